"""Encode upscaled frames into segments: files of the final codec, or numbered PNG frames.

Output kinds, chosen by the output path: `.mkv`, `.mp4`, `.mov`, `.webm` (a container: the codec and its
settings are `patchvsr.io.codecs.Settings`; the defaults are FFV1 in RGB for .mkv, whose decoding gives back
the written uint8 RGB frames exactly, H.264 crf 17 4:2:0 for .mp4, ProRes 422 HQ for .mov, VP9 for .webm), or
a folder: numbered PNG frames `frame_000001.png`, ... For YUV codecs the input's colour matrix and range are
used for RGB -> YUV and tagged, with its primaries and transfer.

A segment starts with a fresh encoder, so it starts on a keyframe and does not depend on earlier segments:
the final file is the segments' packets copied one after another (see `remux`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from patchvsr.io.codecs import Settings, add_encoder

FRAME_NAME = "frame_{:06d}.png"  # frame numbers start at 1
SEGMENT_SUFFIX = {"nut": ".nut", "mov": ".mov"}
# Tags an RGB output (FFV1) carries too: BT.2020 primaries, the PQ and HLG transfers (SDR RGB stays untagged).
WIDE_OR_HDR = {"color_primaries": (9,), "color_trc": (16, 18)}


@dataclass(frozen=True)
class OutputSpec:
    """How to encode: kind (`mkv`/`mp4`/`mov`/`webm`/`png`), frame size, rate, timestamp unit, the codec
    settings (None for PNG frames) and what to carry over.

    color: the input's colour tags (see `VideoInfo.color`): all of them for YUV codecs, for RGB (FFV1) only
    wide-gamut primaries and HDR transfers.
    """

    kind: str
    width: int
    height: int
    fps: Fraction
    time_base: Fraction
    codec: Settings | None = None
    rotation: int = 0
    sample_aspect_ratio: Fraction | None = None
    color: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in ("mkv", "mp4", "mov", "webm", "png"):
            raise ValueError(f"kind must be mkv, mp4, mov, webm or png, got {self.kind!r}")
        if self.width < 1 or self.height < 1:
            raise ValueError(f"frame size must be positive, got {self.width}x{self.height}")
        if (self.codec is None) != (self.kind == "png"):
            raise ValueError("a video output needs codec settings, a PNG folder none")

    @property
    def pix_fmt(self) -> str:
        return "rgb24" if self.codec is None else self.codec.pix_fmt

    @property
    def segment_suffix(self) -> str:
        return "" if self.codec is None else SEGMENT_SUFFIX[self.codec.codec.segment_format]


def add_video_stream(container: av.container.OutputContainer,
                     spec: OutputSpec) -> av.video.stream.VideoStream:
    """A configured encoder stream for `spec` in `container`, with its aspect ratio and colour tags.

    Args:
        container (av.container.OutputContainer): the container opened for writing.
        spec (OutputSpec): a video output (with codec settings).

    Returns:
        av.video.stream.VideoStream: the stream.
    """
    stream = add_encoder(container, spec.codec, spec.width, spec.height, spec.fps, spec.time_base)
    if spec.sample_aspect_ratio:
        stream.codec_context.sample_aspect_ratio = spec.sample_aspect_ratio
    tags = ("colorspace", "color_range", "color_primaries", "color_trc") if _is_yuv(spec) else \
        [tag for tag in ("color_primaries", "color_trc") if spec.color.get(tag) in WIDE_OR_HDR[tag]]
    for tag in tags:
        if spec.color.get(tag):
            setattr(stream.codec_context, tag, spec.color[tag])
    return stream


def _is_yuv(spec: OutputSpec) -> bool:
    return spec.codec is not None and spec.pix_fmt.startswith("yuv")


class SegmentWriter:
    """Writes consecutive output frames `[first, ...)` of one segment: a NUT file or PNGs in a folder.

    write() takes (H, W, 3) uint8 RGB frames (or uint16, 0-65535, for a video output) and their timestamps in
    `spec.time_base`; close() flushes the encoder and syncs the file to disk.
    """

    def __init__(self, path: Path, spec: OutputSpec, first: int):
        self.path, self.spec, self.next_index = path, spec, first
        self.container = self.stream = None
        if spec.codec is not None:
            self.container = av.open(str(path), "w", format=spec.codec.codec.segment_format)
            self.stream = add_video_stream(self.container, spec)

    def write(self, rgb: np.ndarray, pts: int) -> None:
        """Encode (or save as PNG) the next frame.

        Args:
            rgb (np.ndarray): (spec.height, spec.width, 3) uint8 RGB, or uint16 (0-65535) for a video output.
            pts (int): the frame's timestamp in `spec.time_base` (unused for PNG frames).

        Raises:
            ValueError: for another shape or dtype.
        """
        dtypes = (np.uint8,) if self.container is None else (np.uint8, np.uint16)
        if rgb.shape != (self.spec.height, self.spec.width, 3) or rgb.dtype not in dtypes:
            raise ValueError(f"expected a ({self.spec.height}, {self.spec.width}, 3) uint8 frame, "
                             f"got {rgb.shape} {rgb.dtype}")
        self.next_index += 1
        if self.container is None:
            Image.fromarray(rgb).save(self.path / FRAME_NAME.format(self.next_index), compress_level=3)
            return
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb48le" if rgb.dtype == np.uint16 else "rgb24")
        if _is_yuv(self.spec):
            frame = frame.reformat(format=self.spec.pix_fmt, dst_colorspace=_sws_colorspace(self.spec),
                                   dst_color_range=self.spec.color.get("color_range") or None)
        frame.pts = pts
        self.container.mux(self.stream.encode(frame))

    def close(self) -> None:
        if self.container is None:
            return
        self.container.mux(self.stream.encode())
        self.container.close()
        with open(self.path, "rb+") as file:
            os.fsync(file.fileno())

    def abort(self) -> None:
        """Close without flushing, after an error; the segment is incomplete and will be discarded."""
        if self.container is not None:
            try:
                self.container.close()
            except (av.error.FFmpegError, OSError):
                pass


def _sws_colorspace(spec: OutputSpec) -> int | None:
    """The input's colour matrix for RGB -> YUV (AVColorSpace numbers match swscale's for those used)."""
    colorspace = spec.color.get("colorspace")
    return colorspace if colorspace in (1, 4, 5, 6, 7, 9) else None

"""Encode upscaled frames into segments: NUT files of the final codec, or numbered PNG frames.

Output kinds, chosen by the output path:
- `.mkv`: FFV1 in RGB (`bgr0`): decoding gives back the written uint8 RGB frames exactly.
- `.mp4`: H.264 (libx264 preset fast, `crf`, default 17: visually lossless) in 4:2:0 (`yuv420p`), or
  4:4:4 (`yuv444p`) when a side is odd, which 4:2:0 cannot hold; no B-frames, so segments concatenate with
  plain timestamps,
  and no macroblock-tree rate control, which is not reproducible run to run (about 25 % larger files).
  The input's colour matrix and range are used for RGB -> YUV and tagged.
- a folder: numbered PNG frames `frame_000001.png`, ...

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

from patchvsr.options import DEFAULT_CRF

FRAME_NAME = "frame_{:06d}.png"  # frame numbers start at 1


@dataclass(frozen=True)
class OutputSpec:
    """How to encode: kind (`mkv`/`mp4`/`png`), frame size, rate, timestamp unit and what to carry over.

    color: the input's colour tags (see `VideoInfo.color`), used by H.264 only.
    """

    kind: str
    width: int
    height: int
    fps: Fraction
    time_base: Fraction
    crf: int = DEFAULT_CRF
    rotation: int = 0
    sample_aspect_ratio: Fraction | None = None
    color: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in ("mkv", "mp4", "png"):
            raise ValueError(f"kind must be mkv, mp4 or png, got {self.kind!r}")
        if self.width < 1 or self.height < 1:
            raise ValueError(f"frame size must be positive, got {self.width}x{self.height}")
        if not 0 <= self.crf <= 51:
            raise ValueError(f"crf must be in [0, 51], got {self.crf}")

    @property
    def pix_fmt(self) -> str:
        if self.kind == "mkv":
            return "bgr0"
        if self.kind == "mp4":
            return "yuv444p" if self.width % 2 or self.height % 2 else "yuv420p"
        return "rgb24"

    @property
    def segment_suffix(self) -> str:
        return "" if self.kind == "png" else ".nut"


def add_video_stream(container: av.container.OutputContainer,
                     spec: OutputSpec) -> av.video.stream.VideoStream:
    """A configured FFV1 or H.264 encoder stream for `spec` in `container`."""
    codec = "ffv1" if spec.kind == "mkv" else "libx264"
    stream = container.add_stream(codec, rate=spec.fps)
    stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, spec.pix_fmt
    stream.codec_context.time_base = spec.time_base
    stream.time_base = spec.time_base
    if spec.sample_aspect_ratio:
        stream.codec_context.sample_aspect_ratio = spec.sample_aspect_ratio
    if codec == "ffv1":
        stream.options = {"level": "3", "slices": "4", "slicecrc": "1"}
    else:
        # no B-frames: segments concatenate with plain timestamps; no macroblock tree: in this x264 build
        # it depends on memory left over by other code, and resume needs bit-identical segments
        stream.options = {"crf": str(spec.crf), "preset": "fast", "bf": "0", "x264-params": "mbtree=0"}
        for tag in ("colorspace", "color_range", "color_primaries", "color_trc"):
            if spec.color.get(tag):
                setattr(stream.codec_context, tag, spec.color[tag])
    return stream


class SegmentWriter:
    """Writes consecutive output frames `[first, ...)` of one segment: a NUT file or PNGs in a folder.

    write() takes (H, W, 3) uint8 RGB frames and their timestamps in `spec.time_base`; close() flushes
    the encoder and syncs the file to disk.
    """

    def __init__(self, path: Path, spec: OutputSpec, first: int):
        self.path, self.spec, self.next_index = path, spec, first
        self.container = self.stream = None
        if spec.kind != "png":
            self.container = av.open(str(path), "w", format="nut")
            self.stream = add_video_stream(self.container, spec)

    def write(self, rgb: np.ndarray, pts: int) -> None:
        if rgb.shape != (self.spec.height, self.spec.width, 3) or rgb.dtype != np.uint8:
            raise ValueError(f"expected a ({self.spec.height}, {self.spec.width}, 3) uint8 frame, "
                             f"got {rgb.shape} {rgb.dtype}")
        self.next_index += 1
        if self.container is None:
            Image.fromarray(rgb).save(self.path / FRAME_NAME.format(self.next_index), compress_level=3)
            return
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        if self.spec.kind == "mp4":
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

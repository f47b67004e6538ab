"""Stream decoded frames of a probed input as (H, W, 3) uint8 RGB arrays, one at a time.

Timestamps follow `VideoInfo.time_base`: for constant frame rate they are frame numbers, each frame's own
time rounded to the frame grid (so the output is exactly `fps`, whatever rounding the input container
used, and a frame that follows hidden or missing ones keeps its place against the audio); for variable
frame rate they are the input's own timestamps. Either way they are forced strictly increasing, so no
frame is dropped or duplicated. With a cut (`VideoInfo.cut`, a part of the video) the reader seeks to the
keyframe before it, keeps the frames inside and shifts their timestamps back by the cut's offset.

The header's frame count is a hint: the reader decodes what is there, skips packets the decoder rejects
(as players do), and logs one warning at the end when the count differs from the hint or the file is
damaged. Only a file without a single decodable frame is an error (the probe already refused it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
from PIL import Image

from patchvsr.errors import InputError
from patchvsr.io.probe import VideoInfo, open_video, video_stream
from patchvsr.io.span import frame_ticks

log = logging.getLogger("patchvsr")


@dataclass(frozen=True)
class Frame:
    """One decoded frame: `rgb` (H, W, 3) uint8 (uint16 for inputs of more than 8 bits read at `full_depth`),
    `pts` in the input's `VideoInfo.time_base`."""

    index: int
    pts: int
    rgb: np.ndarray


def read_frames(info: VideoInfo, full_depth: bool = False) -> Iterator[Frame]:
    """Yield every frame of the input in presentation order; InputError if the frame size changes.

    Args:
        info (VideoInfo): the probed input.
        full_depth (bool, *optional*, defaults to False): frames of inputs with more than 8 bits per sample come
            as uint16 RGB (0-65535) instead of being reduced to uint8.

    Yields:
        Frame: (index, pts in `info.time_base`, rgb (info.height, info.width, 3) uint8 or uint16).

    Raises:
        InputError: if a frame's size differs from the first, or a PNG cannot be read.
    """
    frames = _read_folder(info) if info.folder else _read_file(info, full_depth and info.bit_depth > 8)
    for index, (pts, rgb) in enumerate(frames):
        if rgb.shape != (info.height, info.width, 3):
            raise InputError(f"{info.path}: frame {index + 1} is {rgb.shape[1]}x{rgb.shape[0]}, "
                             f"not {info.width}x{info.height} like the first")
        yield Frame(index, info.first_pts + index if pts is None else pts, rgb)


def _read_file(info: VideoInfo, sixteen_bit: bool) -> Iterator[tuple[int, np.ndarray]]:
    previous, decoded, rejected = None, 0, 0
    cut, shift = info.cut, frame_ticks(info.cut, info.time_base)
    with open_video(info.path) as container:
        stream = video_stream(info.path, container)
        stream.thread_type = "AUTO"
        if cut is not None and cut.offset > 0:
            container.seek(cut.low, stream=stream, backward=True)
        for packet in _packets(container, stream):
            try:
                frames = stream.decode(packet)
            except av.error.FFmpegError:
                rejected += 1
                continue
            for frame in frames:
                if cut is not None and frame.pts is not None:
                    if frame.pts < cut.low:
                        continue
                    if cut.high is not None and frame.pts >= cut.high:
                        break
                pts = _timestamp(info, frame.pts, stream.time_base, previous)
                previous = pts
                decoded += 1
                yield pts - shift, frame.to_ndarray(format="rgb48le" if sixteen_bit else "rgb24",
                                                    src_color_range=int(frame.color_range))
            if cut is not None and cut.high is not None and decoded >= cut.frames:
                break
    _warn_if_different(info, decoded, rejected)


def _packets(container, stream) -> Iterator[av.Packet | None]:
    """The stream's packets, then None to flush the decoder; a demuxer error ends the file there."""
    demuxed = container.demux(stream)
    while True:
        try:
            packet = next(demuxed)
        except (StopIteration, av.error.FFmpegError):
            break
        if packet.size:
            yield packet
    yield None


def _timestamp(info: VideoInfo, pts: int | None, time_base: Fraction, previous: int | None) -> int:
    """A frame's timestamp `pts` in the stream's `time_base` -> `info.time_base` (see the module docstring),
    after `previous`. (The stream's time base: frames flushed from the decoder carry none of their own.)"""
    if pts is None:
        pts = info.first_pts if previous is None else previous + 1
    elif not info.vfr:
        pts = round(pts * time_base / info.time_base)
    return pts if previous is None or pts > previous else previous + 1


def _warn_if_different(info: VideoInfo, decoded: int, rejected: int) -> None:
    """One warning line when the decoded frames are not what the probe expected, naming both numbers."""
    notes = [info.damage] if info.damage else []
    if rejected:
        notes.append(f"{rejected} damaged packet(s) skipped")
    expected = info.frames if info.cut else info.header_frames or info.frames
    if decoded != expected:
        source = "its header says" if info.header_frames and not info.cut else "the probe counted"
        notes.insert(0, f"{decoded} frames decoded, {source} {expected}")
    if notes:
        log.warning("%s: %s; all %d decoded frames are upscaled", info.path.name, "; ".join(notes), decoded)


def _read_folder(info: VideoInfo) -> Iterator[tuple[None, np.ndarray]]:
    files = info.png_files if info.cut is None else info.png_files[info.cut.low:info.cut.low + info.cut.frames]
    for file in files:
        try:
            with Image.open(file) as image:
                rgb = np.asarray(image.convert("RGB"))
        except OSError as err:
            raise InputError(f"{file}: not a readable PNG ({err})") from err
        yield None, rgb

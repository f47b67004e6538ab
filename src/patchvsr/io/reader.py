"""Stream decoded frames of a probed input as (H, W, 3) uint8 RGB arrays, one at a time.

Timestamps follow `VideoInfo.time_base`: for constant frame rate they are frame numbers counted from the
first frame's position (so the output is exactly `fps`, whatever rounding the input container used); for
variable frame rate they are the input's own timestamps, kept frame by frame (forced strictly increasing),
so no frame is dropped or duplicated and audio stays in sync.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import av
import numpy as np
from PIL import Image

from patchvsr.errors import InputError
from patchvsr.io.probe import VideoInfo, open_video, video_stream


@dataclass(frozen=True)
class Frame:
    """One decoded frame: `rgb` (H, W, 3) uint8, `pts` in the input's `VideoInfo.time_base`."""

    index: int
    pts: int
    rgb: np.ndarray


def read_frames(info: VideoInfo) -> Iterator[Frame]:
    """Yield every frame of the input in presentation order; InputError on corrupt data or size changes."""
    frames = _read_folder(info) if info.folder else _read_file(info)
    for index, (pts, rgb) in enumerate(frames):
        if rgb.shape != (info.height, info.width, 3):
            raise InputError(f"{info.path}: frame {index + 1} is {rgb.shape[1]}x{rgb.shape[0]}, "
                             f"not {info.width}x{info.height} like the first")
        yield Frame(index, info.first_pts + index if pts is None else pts, rgb)


def _read_file(info: VideoInfo) -> Iterator[tuple[int | None, np.ndarray]]:
    previous = None
    with open_video(info.path) as container:
        stream = video_stream(info.path, container)
        stream.thread_type = "AUTO"
        decoded = container.decode(stream)
        while True:
            try:
                frame = next(decoded)
            except StopIteration:
                return
            except av.error.FFmpegError as err:
                raise InputError(f"{info.path}: corrupt video data ({err.strerror or err})") from err
            pts = None
            if info.vfr:
                pts = frame.pts if frame.pts is not None else (previous or 0) + 1
                pts = pts if previous is None or pts > previous else previous + 1
                previous = pts
            yield pts, frame.to_ndarray(format="rgb24", src_color_range=int(frame.color_range))


def _read_folder(info: VideoInfo) -> Iterator[tuple[None, np.ndarray]]:
    for file in info.png_files:
        try:
            with Image.open(file) as image:
                rgb = np.asarray(image.convert("RGB"))
        except OSError as err:
            raise InputError(f"{file}: not a readable PNG ({err})") from err
        yield None, rgb

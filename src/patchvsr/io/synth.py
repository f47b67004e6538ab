"""Small synthetic videos written with PyAV: test fixtures, benchmarks and the demo fallback.

Frames are smooth gradients with a moving square and fine stripes, deterministic in the frame index, so
every frame differs from its neighbours and scaling errors show up in any metric.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from patchvsr.sizes import WH

# Default codecs per container when the caller names none (all available in the PyAV wheels).
VIDEO_CODECS = {".mp4": "libx264", ".mkv": "ffv1", ".avi": "mpeg4", ".webm": "libvpx-vp9", ".mov": "libx264",
                ".nut": "ffv1"}
AUDIO_CODECS = {".mp4": "aac", ".mkv": "flac", ".avi": "pcm_s16le", ".webm": "libopus", ".mov": "aac",
                ".nut": "pcm_s16le"}
PIXEL_FORMATS = {"libx264": "yuv420p", "ffv1": "yuv444p", "mpeg4": "yuv420p", "libvpx-vp9": "yuv420p",
                 "libvpx": "yuv420p", "png": "rgb24", "mjpeg": "yuvj420p"}
VFR_TICKS = (2, 1, 3, 2)  # frame durations in half frame periods, cycled for variable frame rate


def synthetic_frame(index: int, width: int, height: int) -> np.ndarray:
    """Frame `index` of the synthetic sequence.

    Args:
        index (int): the frame's index, >= 0 (the square moves with it).
        width (int): the frame's width in pixels, >= 1.
        height (int): the frame's height in pixels, >= 1.

    Returns:
        np.ndarray: (height, width, 3) uint8 RGB.
    """
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    red = 255.0 * x / max(width - 1, 1)
    green = 255.0 * y / max(height - 1, 1)
    blue = 127.5 + 127.5 * np.sin((x + 2.0 * y) * 0.9 + 0.7 * index)
    frame = np.stack([red, green, blue], axis=-1)
    side = max(1, min(width, height) // 3)
    x0 = (3 * index) % max(width - side + 1, 1)
    y0 = (2 * index) % max(height - side + 1, 1)
    frame[y0:y0 + side, x0:x0 + side] = (250.0, 30.0 + 20.0 * (index % 5), 40.0)
    return np.clip(frame + 0.5, 0, 255).astype(np.uint8)


def frame_times(frames: int, vfr: bool) -> list[int]:
    """Timestamps: 0, 1, 2, ... frame periods, or for `vfr` half frame periods with VFR_TICKS durations.

    Args:
        frames (int): the frame count, >= 0.
        vfr (bool): variable frame rate.

    Returns:
        list[int]: `frames` increasing timestamps from 0.
    """
    if not vfr:
        return list(range(frames))
    steps = [VFR_TICKS[i % len(VFR_TICKS)] for i in range(frames)]
    return [sum(steps[:i]) for i in range(frames)]


def write_test_video(path: str | Path, *, size: WH = (32, 24), frames: int = 8,
                     fps: Fraction | int = 25, codec: str | None = None, pix_fmt: str | None = None,
                     audio: bool = False, audio_codec: str | None = None, title: str | None = None,
                     language: str | None = None, rotation: int | None = None, vfr: bool = False) -> Path:
    """Write a synthetic video of `frames` frames of `size` = (width, height) and return its path.

    Args:
        path (str or Path): the file (its suffix picks the default codecs), or, without a suffix, a folder of
            numbered PNG frames.
        size (WH, *optional*, defaults to (32, 24)): (width, height) in pixels.
        frames (int, *optional*, defaults to 8): the frame count.
        fps (Fraction or int, *optional*, defaults to 25): the frame rate.
        codec (str, *optional*): the video encoder (default: VIDEO_CODECS of the suffix).
        pix_fmt (str, *optional*): the pixel format (default: PIXEL_FORMATS of the codec).
        audio (bool, *optional*, defaults to False): add a 440 Hz tone as long as the video.
        audio_codec (str, *optional*): the audio encoder (default: AUDIO_CODECS of the suffix).
        title (str, *optional*): the container's title.
        language (str, *optional*): the language tag of every stream.
        rotation (int, *optional*): degrees counter-clockwise, in the video stream's display matrix.
        vfr (bool, *optional*, defaults to False): frame durations alternate (see VFR_TICKS).

    Returns:
        Path: `path`.
    """
    path = Path(path)
    width, height = size
    if not path.suffix:
        path.mkdir(parents=True, exist_ok=True)
        for i in range(frames):
            Image.fromarray(synthetic_frame(i, width, height)).save(path / f"frame_{i + 1:06d}.png")
        return path
    fps = Fraction(fps)
    codec = codec or VIDEO_CODECS[path.suffix]
    with av.open(str(path), "w") as container:
        if title is not None:
            container.metadata["title"] = title
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = pix_fmt or PIXEL_FORMATS.get(codec, "yuv420p")
        stream.codec_context.time_base = 1 / (2 * fps) if vfr else 1 / fps
        if codec == "libx264":
            stream.options = {"crf": "12", "preset": "ultrafast"}
        if rotation is not None:
            stream.set_display_rotation(rotation)
        sound = _add_audio(container, audio_codec or AUDIO_CODECS[path.suffix]) if audio else None
        for stream_ in container.streams:
            if language is not None:
                stream_.metadata["language"] = language
        for i, pts in enumerate(frame_times(frames, vfr)):
            frame = av.VideoFrame.from_ndarray(synthetic_frame(i, width, height), format="rgb24")
            frame.pts = pts
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
        if sound is not None:
            seconds = frame_times(frames + 1, vfr)[-1] * stream.codec_context.time_base
            _write_tone(container, sound, seconds)
    return path


def _add_audio(container: av.container.OutputContainer, codec: str) -> av.audio.stream.AudioStream:
    rate = 48000
    stream = container.add_stream(codec, rate=rate)
    stream.layout = "stereo"
    stream.time_base = Fraction(1, rate)
    return stream


def _write_tone(container: av.container.OutputContainer, stream: av.audio.stream.AudioStream,
                seconds: Fraction) -> None:
    rate = stream.rate
    total = int(seconds * rate)
    chunk = stream.codec_context.frame_size or 1024
    for start in range(0, total, chunk):
        n = min(chunk, total - start)
        t = (np.arange(start, start + n) / rate).astype(np.float32)
        tone = (0.3 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
        frame.sample_rate = rate
        frame.pts = start
        container.mux(stream.encode(frame))
    container.mux(stream.encode())

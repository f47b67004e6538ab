"""Shared fixtures: tiny synthetic videos written with PyAV, and decoding helpers.

- `make_video(name, **options)`: writes `tmp_path/name` with `patchvsr.io.synth.write_test_video`
  (size=(w, h), frames, fps incl. Fraction(30000, 1001), codec, pix_fmt, audio, audio_codec, title,
  language, rotation, vfr); a name without suffix makes a folder of numbered PNGs.
- `decode_video(path)`: all frames of a video file or PNG folder as one (N, H, W, 3) uint8 array.
- `video_facts(path)`: frame count, size, fps, timestamps in seconds, audio durations, metadata.
- `output_path(folder, name)`: `folder / name`, kept as a string ending in `/` when `name` does (a folder of
  PNG frames: the only spelling of a new folder output, since `-o out` without a suffix is refused).
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from patchvsr.io.synth import write_test_video

# I/O, resume and CLI tests run on bicubic (exact and fast), also in the subprocesses they start; tests of the
# embedded default model name it, or clear this variable.
os.environ["PATCHVSR_MODEL"] = "bicubic"


@pytest.fixture
def make_video(tmp_path):
    def make(name: str = "input.mp4", **options) -> Path:
        return write_test_video(tmp_path / name, **options)
    return make


@pytest.fixture
def make_audio_only(tmp_path):
    """An .m4a file holding one second of AAC audio and no video stream."""
    def make(name: str = "audio_only.mp4") -> Path:
        path = tmp_path / name
        with av.open(str(path), "w") as container:
            stream = container.add_stream("aac", rate=48000)
            stream.layout = "mono"
            for start in range(0, 48000, 1024):
                samples = np.zeros((1, 1024), dtype=np.float32)
                frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
                frame.sample_rate, frame.pts = 48000, start
                container.mux(stream.encode(frame))
            container.mux(stream.encode())
        return path
    return make


def _decode(path: Path) -> np.ndarray:
    path = Path(path)
    if path.is_dir():
        from PIL import Image
        return np.stack([np.asarray(Image.open(f).convert("RGB")) for f in sorted(path.glob("*.png"))])
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


@pytest.fixture
def decode_video():
    return _decode


def _facts(path: Path) -> dict:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = list(container.decode(video))
        audio = [s for s in container.streams.audio]
        return {
            "frames": len(frames),
            "size": (frames[0].width, frames[0].height),
            "fps": Fraction(video.average_rate),
            "times": [float(f.pts * f.time_base) for f in frames],
            "rotation": frames[0].rotation,
            "codec": video.codec_context.name,
            "pix_fmt": video.codec_context.pix_fmt,
            "title": container.metadata.get("title"),
            "language": video.metadata.get("language"),
            "audio": [(s.codec_context.name, _audio_seconds(path, s.index), s.metadata.get("language"))
                      for s in audio],
        }


def _audio_seconds(path: Path, index: int) -> float:
    """Seconds of decoded audio samples in stream `index`."""
    with av.open(str(path)) as container:
        stream = container.streams[index]
        samples = sum(frame.samples for frame in container.decode(stream))
        return samples / stream.codec_context.sample_rate


@pytest.fixture
def video_facts():
    return _facts


def _output_path(folder: Path, name: str) -> Path | str:
    return f"{folder / name}/" if name.endswith("/") else folder / name


@pytest.fixture
def output_path():
    return _output_path


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run faster on one thread, and far faster when other processes share the cores.
    Modules opt in with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

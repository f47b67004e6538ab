"""`patchvsr upscale` with the CLI's real default, the shipped lite model, end to end on a few small frames.

The rest of the suite runs on bicubic (`PATCHVSR_MODEL=bicubic`, see conftest); this test clears that, so
the model a user gets without `--model` is loaded from the package, run and written, and must beat bicubic.
"""

from __future__ import annotations

import json

import av
import numpy as np
import pytest

from patchvsr.cli import main
from patchvsr.datasets import sample_video
from patchvsr.eval.evaluate import downscale
from patchvsr.eval.metrics import psnr_y

FRAMES, SIDE, K = 4, 128, 4


def reference_frames() -> np.ndarray:
    """FRAMES frames of carphone (public evaluation set, never trained on), a SIDE×SIDE crop: (N, H, W, 3)."""
    with av.open(str(sample_video("carphone_pristine"))) as container:
        frames = [f.to_ndarray(format="rgb24") for _, f in zip(range(FRAMES), container.decode(video=0))]
    return np.stack(frames)[:, 8:8 + SIDE, 24:24 + SIDE]


def write_lossless(path, frames: np.ndarray) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "bgr0"
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def decode(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


@pytest.mark.usefixtures("one_thread")
def test_default_model_end_to_end_beats_bicubic(tmp_path, monkeypatch):
    hr = reference_frames()
    lr = tmp_path / "lr.mkv"
    write_lossless(lr, np.stack([downscale(frame, K) for frame in hr]))
    assert main(["upscale", str(lr), "-o", str(tmp_path / "bicubic.mkv"), "-q", "--model", "bicubic"]) == 0
    monkeypatch.delenv("PATCHVSR_MODEL")
    assert main(["upscale", str(lr), "-o", str(tmp_path / "default.mkv"), "-q", "--stats",
                 str(tmp_path / "stats.json")]) == 0
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert (stats["model"], stats["frames"], stats["width"], stats["height"]) == ("lite", FRAMES, SIDE, SIDE)
    bicubic, default = decode(tmp_path / "bicubic.mkv"), decode(tmp_path / "default.mkv")
    gain = np.mean([psnr_y(d, h) - psnr_y(b, h) for d, b, h in zip(default, bicubic, hr)])
    assert gain > 0.3, f"the default model is only {gain:+.2f} dB over bicubic"

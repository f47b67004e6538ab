"""The CUDA path: the shipped model, a training run and the CLI on a GPU agree with the CPU.

Skipped where no CUDA GPU is present (CI and the development machine); run them on a GPU machine with
`pytest tests/test_cuda.py`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_train_loop import base_dir, config_for, data_dir  # noqa: F401 - module fixtures shared with CPU tests

from patchvsr.api import upscale_stream
from patchvsr.cli import main
from patchvsr.methods import get_upscaler
from patchvsr.methods.patchvsr import SHIPPED
from patchvsr.train import loop
from patchvsr.train.checkpoint import load_checkpoint

pytestmark = [pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU"),
              pytest.mark.skipif(not (SHIPPED / "tiny" / "config.json").is_file(), reason="no shipped weights")]


def _smooth_frames(count: int, height: int, width: int) -> np.ndarray:
    """A moving blurred random texture: (count, height, width, 3) uint8 (the kind of input the model expects)."""
    rng = np.random.default_rng(0)
    big = torch.from_numpy(rng.random((1, 3, height // 4 + 8, width // 4 + 8), dtype=np.float32))
    big = torch.nn.functional.interpolate(big, scale_factor=4, mode="bicubic", align_corners=False)[0]
    frames = [big[:, k // 2:k // 2 + height, k:k + width] for k in range(count)]
    return (torch.stack(frames).clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()


def _upscale(device: str, dtype: str, frames: np.ndarray) -> np.ndarray:
    upscaler = get_upscaler("tiny", device=device, dtype=dtype)
    size = (frames.shape[1] * 4, frames.shape[2] * 4)
    return np.stack(list(upscale_stream(iter(frames), upscaler, size)))


def test_tiny_model_on_cuda_matches_cpu():
    frames = _smooth_frames(8, 40, 48)
    cpu = _upscale("cpu", "fp32", frames)
    gpu = _upscale("cuda", "fp32", frames)
    gpu_bf16 = _upscale("cuda", "bf16", frames)
    assert cpu.shape == gpu.shape == gpu_bf16.shape == (8, 160, 192, 3)
    difference = np.abs(cpu.astype(np.int16) - gpu.astype(np.int16))
    assert difference.mean() < 0.1 and (difference > 2).mean() < 1e-3, (difference.mean(), difference.max())
    mse = np.mean((cpu.astype(np.float64) - gpu_bf16) ** 2)
    assert 10 * np.log10(255**2 / mse) > 40.0  # bf16 autocast: the same picture to within a small noise


def test_training_on_cuda_lowers_the_loss_and_resumes_exactly(data_dir, base_dir, tmp_path):  # noqa: F811
    config = config_for("adapter", base_dir, batch=4, lr=3e-2, val_every=100)
    trainer = loop.Trainer(config, data_dir, tmp_path / "fit", resume=False, device="cuda", log=lambda line: None)
    assert trainer.accelerator.device.type == "cuda"
    batch = next(loop._train_batches(config, data_dir, 0, trainer.accelerator))
    losses = [trainer.step(batch) for _ in range(12)]
    assert losses[-1] < 0.95 * losses[0], losses

    quiet = dict(device="cuda", log=lambda line: None)
    straight = loop.train(config, data_dir, tmp_path / "straight", steps=3, **quiet)
    loop.train(config, data_dir, tmp_path / "resumed", steps=2, **quiet)
    resumed = loop.train(config, data_dir, tmp_path / "resumed", steps=3, resume=True, **quiet)
    assert resumed["val_psnr"] == pytest.approx(straight["val_psnr"], abs=1e-3)
    a, b = load_checkpoint(tmp_path / "straight" / "checkpoint"), load_checkpoint(tmp_path / "resumed" / "checkpoint")
    for name in a.model:  # checkpoints hold CPU tensors, whatever device trained them
        assert a.model[name].device.type == "cpu"
        torch.testing.assert_close(a.model[name], b.model[name], rtol=1e-4, atol=1e-5)


def test_cli_upscales_on_cuda(make_video, video_facts, tmp_path):
    source = make_video("in.mp4", size=(40, 32), frames=10, fps=24, audio=True)
    out = tmp_path / "out.mp4"
    assert main(["upscale", str(source), "-o", str(out), "--scale", "4", "--model", "tiny", "--device", "cuda",
                 "--quiet"]) == 0
    facts, original = video_facts(out), video_facts(source)
    assert (facts["frames"], facts["size"], facts["fps"]) == (10, (160, 128), original["fps"])
    assert len(facts["audio"]) == 1 and facts["audio"][0][1] == pytest.approx(original["audio"][0][1], abs=0.05)

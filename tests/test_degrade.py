"""Training degradation: shapes and ranges, determinism per sample, independence of the batch, the
evaluation protocol's bicubic path, noise augmentation through the flow convention, realistic variants."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from patchvsr.methods.classical import Bicubic
from patchvsr.sampling import add_noise
from patchvsr.train import realistic
from patchvsr.train.degrade import Degraded, DegradeConfig, degrade, degrade_clip, downsample, quantize, \
    upsample_bicubic

CONFIG = DegradeConfig(window=16, frames=2)


pytestmark = pytest.mark.usefixtures("one_thread")


def clips(batch: int = 3, frames: int = 3, size: int = 40, seed: int = 0) -> torch.Tensor:
    """(B, 3, T, S, S) in [0, 1]: smooth random images."""
    low = torch.rand(batch * frames, 3, size // 4, size // 4, generator=torch.Generator().manual_seed(seed))
    up = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    return up.reshape(batch, frames, 3, size, size).transpose(1, 2).contiguous()


def generators(seed: int, count: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed * 100 + i) for i in range(count)]


@pytest.mark.parametrize("config", [CONFIG, dataclasses.replace(CONFIG, full_frame=True),
                                    dataclasses.replace(CONFIG, realistic_share=1.0, global_size=8)])
def test_shapes_and_ranges(config):
    out = degrade(clips(), config, generators(0, 3))
    side = config.global_size or 16
    for name in ("hr", "lr_up", "cond"):
        assert getattr(out, name).shape == (3, 3, 2, 16, 16)
    assert out.global_frame.shape == (3, 3, 2, side, side)
    assert out.position_mask.shape == (3, 1, side, side)
    for name in ("hr", "lr_up", "global_frame"):
        assert -1.0 - 1e-6 <= float(getattr(out, name).min()) and float(getattr(out, name).max()) <= 1.0 + 1e-6
    assert set(out.position_mask.unique().tolist()) <= {0.0, 1.0} and bool((out.position_mask.sum((1, 2, 3)) > 0).all())
    assert bool(((out.crop_box >= 0) & (out.crop_box <= 1)).all())
    assert bool((out.crop_box[:, 2:] > out.crop_box[:, :2]).all())
    assert bool(((out.scale > 1.8) & (out.scale < 4.5)).all())
    levels = out.noise_level
    assert bool(((levels == 0) | ((levels >= 0.2) & (levels <= 0.3))).all())


def test_deterministic_per_sample_and_independent_of_the_batch():
    batch = clips(batch=4)
    first = degrade(batch, CONFIG, generators(1, 4))
    again = degrade(batch, CONFIG, generators(1, 4))
    other = degrade(batch, CONFIG, generators(2, 4))
    alone = degrade_clip(batch[2], CONFIG, generators(1, 4)[2])
    for name in vars(first):
        torch.testing.assert_close(getattr(first, name), getattr(again, name), rtol=0, atol=0)
        torch.testing.assert_close(getattr(first, name)[2], alone[name], rtol=0, atol=0)
    assert not torch.equal(first.cond, other.cond)


def test_noise_augmentation_follows_the_flow_convention():
    config = dataclasses.replace(CONFIG, clean_share=0.5)
    out = degrade(clips(batch=8), config, generators(3, 8))
    clean = out.noise_level == 0
    assert 0 < int(clean.sum()) < 8
    torch.testing.assert_close(out.cond[clean], out.lr_up[clean], rtol=0, atol=0)
    noisy = ~clean
    t = out.noise_level[noisy].view(-1, 1, 1, 1, 1)
    implied_noise = (out.cond[noisy] - (1 - t) * out.lr_up[noisy]) / t
    torch.testing.assert_close(add_noise(out.lr_up[noisy], implied_noise, t), out.cond[noisy])
    assert 0.8 < float(implied_noise.std()) < 1.2


def test_bicubic_path_matches_the_evaluation_protocol_and_inference_upsampler():
    # full frame with window = clip size: the HR is the clip itself; factor 4, bicubic only, no noise.
    config = DegradeConfig(window=32, frames=2, full_frame=True, scale_range=(4.0, 4.0), bicubic_share=1.0,
                           clean_share=1.0)
    batch = clips(batch=1, frames=2, size=32)
    out = degrade(batch, config, generators(4, 1))
    frames = batch[0].transpose(0, 1)                                    # (T, 3, 32, 32)
    hr = downsample(frames, (32, 32), bicubic=True)
    lr = quantize(downsample(hr, (8, 8), bicubic=True))
    expected = upsample_bicubic(lr, (32, 32))
    torch.testing.assert_close(out.lr_up[0], expected.transpose(0, 1) * 2 - 1)
    torch.testing.assert_close(upsample_bicubic(lr, (32, 32)), Bicubic().upscale_clip(lr, (32, 32), 0))
    torch.testing.assert_close(out.lr_up[0], out.cond[0], rtol=0, atol=0)
    assert out.scale.tolist() == [4.0]
    assert out.crop_box.tolist() == [[0.0, 0.0, 1.0, 1.0]] and bool((out.position_mask == 1).all())
    assert torch.equal(quantize(lr), lr)


def test_realistic_codecs_roundtrip_close_to_input():
    frames = clips(batch=1, frames=3, size=24)[0].transpose(0, 1)        # (3, 3, 24, 24)
    frames = quantize(frames)
    for coded in (realistic.jpeg(frames, 95), realistic.h264(frames[:, :, :, :23], 18)):
        assert coded.shape[0] == 3 and coded.shape[1] == 3
        reference = frames[..., : coded.shape[-1]]
        mse = float(((coded - reference) ** 2).mean())
        assert 0 < mse < 10 ** (-20 / 10)                                  # > 20 dB, yet not lossless
    blurred = realistic.gaussian_blur(torch.full((1, 3, 9, 7), 0.4), 1.5)
    torch.testing.assert_close(blurred, torch.full((1, 3, 9, 7), 0.4))


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="scale_range"):
        DegradeConfig(scale_range=(4.0, 2.0))
    with pytest.raises(ValueError, match="noise_range"):
        DegradeConfig(noise_range=(0.2, 1.5))
    with pytest.raises(ValueError, match="bicubic_share"):
        DegradeConfig(bicubic_share=2.0)
    with pytest.raises(ValueError, match="smaller than"):
        degrade(clips(size=12), CONFIG, generators(0, 3))


def test_degraded_fields_are_documented():
    assert set(Degraded.__dataclass_fields__) == {"hr", "lr_up", "cond", "global_frame", "position_mask",
                                                 "scale", "crop_box", "noise_level", "degradation"}

"""Back-projection onto the input: the output downscales (antialiased bicubic) to the input, the weight fades
with the degradation strength, and a bad --consistency is an option error."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from patchvsr.consistency import FADE, back_project, estimate_seconds, weight_for
from patchvsr.errors import OptionError
from patchvsr.methods.patchvsr import SamplerOptions


def down(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False)


def test_back_projection_makes_the_output_downscale_to_the_input():
    generator = torch.Generator().manual_seed(0)
    lr = torch.rand(2, 3, 12, 16, generator=generator) * 0.8 + 0.1
    guess = (F.interpolate(lr, size=(48, 64), mode="bicubic", align_corners=False)
             + 0.05 * torch.randn(2, 3, 48, 64, generator=generator)).clamp(0, 1)
    before = (down(guess, (12, 16)) - lr).abs().mean()
    after = (down(back_project(guess, lr), (12, 16)) - lr).abs().mean()
    assert after < 0.5 * before            # random LR texture is the slowest case (near its Nyquist)
    assert torch.equal(back_project(guess, lr, weight=0.0), guess)
    half = (down(back_project(guess, lr, weight=0.5, iterations=1), (12, 16)) - lr).abs().mean()
    assert after < half < before


def test_the_weight_fades_with_the_degradation_strength():
    assert weight_for(None) == weight_for(0.0) == 1.0 and weight_for(FADE / 2) == 0.5 and weight_for(0.7) == 0.0
    options = SamplerOptions(consistency="auto")
    assert options.consistency_weight(0.1) == weight_for(0.1)
    assert SamplerOptions(consistency="0.25").consistency_weight(0.9) == 0.25
    for bad in ("sometimes", "1.5", -0.1):
        with pytest.raises(OptionError, match="--consistency"):
            SamplerOptions(consistency=bad)


def test_the_estimate_is_one_timed_frame_per_frame(monkeypatch):
    ticks = iter([10.0, 10.5])
    monkeypatch.setattr("patchvsr.consistency.time.perf_counter", lambda: next(ticks))
    assert estimate_seconds((32, 48), (8, 12), 6) == pytest.approx(3.0)
    assert estimate_seconds((32, 48), (8, 12), 0) == 0.0

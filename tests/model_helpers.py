"""Helpers for tests that need random-weight models and random window conditions (CPU, no downloads).

Freshly built models are degenerate on purpose (zero-initialised head, gates and adapter layers), so tests that
check behaviour first `perturb_` the weights. All randomness comes from explicit generators.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch
from torch import nn

from patchvsr.models.conditions import WindowConditions


def perturb_(module: nn.Module, seed: int, std: float = 0.05, only_trainable: bool = False) -> nn.Module:
    """Add N(0, std²) noise to every parameter of `module` (in place), so no layer stays exactly zero."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            if only_trainable and not parameter.requires_grad:
                continue
            noise = torch.randn(parameter.shape, generator=generator, dtype=torch.float32)
            parameter.add_(std * noise.to(parameter.dtype))
    return module


def random_conditions(
    in_channels: int,
    n: int,
    frames: int,
    size: tuple[int, int],
    seed: int,
    keys: Sequence[Hashable] | None = None,
    global_size: tuple[int, int] | None = None,
) -> WindowConditions:
    """N random windows of (frames, *size): lr_up and G uniform in [-1, 1], a binary mask, scale in [2, 4],
    crop boxes inside [0, 1], noise levels in [0.2, 0.3]. global_size defaults to the window size."""
    generator = torch.Generator().manual_seed(seed)
    gh, gw = global_size or size

    def uniform(*shape: int, low: float = -1.0, high: float = 1.0) -> torch.Tensor:
        return low + (high - low) * torch.rand(shape, generator=generator)

    mask = (torch.rand((n, 1, frames, gh, gw), generator=generator) > 0.7).float()
    corner = uniform(n, 2, low=0.0, high=0.5)
    return WindowConditions(
        lr_up=uniform(n, in_channels, frames, *size),
        global_input=torch.cat([uniform(n, in_channels, frames, gh, gw), mask], dim=1),
        scale=uniform(n, low=2.0, high=4.0),
        crop_box=torch.cat([corner, corner + 0.5], dim=1),
        noise_level=uniform(n, low=0.2, high=0.3),
        keys=None if keys is None else tuple(keys),
    )


def random_noisy(in_channels: int, n: int, frames: int, size: tuple[int, int], seed: int) -> tuple:
    """Random z_t: (N, C, T, h, w) ~ N(0, 1) and t: (N,) uniform in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn((n, in_channels, frames, *size), generator=generator)
    return z, torch.rand((n,), generator=generator)

"""Per-window conditions of the PatchVSR adapter and their embedding (scale, crop box, noise-augmentation level).

`WindowConditions` is what the glue code builds from the tiling engine's window batch; everything in it depends
only on the LR clip and the window, never on the sampling time t, so the branch features computed from it are
cached per window (`patchvsr.models.adapter.BranchCache`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Sequence

import torch
from diffusers.models.embeddings import Timesteps
from einops import rearrange
from torch import nn

from patchvsr.models.layers import zero_init

# Scalars fed to the condition embedder, in this order: log2 scale, crop x0, y0, x1, y1, noise level.
N_CONDITION_SCALARS = 6


@dataclasses.dataclass(frozen=True, eq=False)
class WindowConditions:
    """Conditions of N windows (one row each); shapes are checked on construction (ValueError).

    lr_up: (N, C, T, h, w) in [-1, 1], the bicubic-upsampled LR window (possibly noise-augmented), in the
        model's input space (C = in_channels);
    global_input: (N, C + 1, T, gh, gw): the downsized whole frame G in [-1, 1] plus the window's binary
        position mask M_i in {0, 1} as last channel; None only for a model without global branch;
    scale: (N,) upscaling factor k > 0; crop_box: (N, 4) window box (x0, y0, x1, y1) in [0, 1] relative to the
        whole frame; noise_level: (N,) in [0, 1], the rectified-flow time of the condition's noise augmentation;
    keys: N hashable cache keys (window indices in the plan), or None to compute branch features afresh.
    """

    lr_up: torch.Tensor
    global_input: torch.Tensor | None
    scale: torch.Tensor
    crop_box: torch.Tensor
    noise_level: torch.Tensor
    keys: tuple[Hashable, ...] | None = None

    def __post_init__(self):
        if self.lr_up.ndim != 5:
            raise ValueError(f"lr_up must be (N, C, T, h, w), got shape {tuple(self.lr_up.shape)}")
        n, channels, frames = self.lr_up.shape[:3]
        if self.global_input is not None and (
            self.global_input.ndim != 5 or self.global_input.shape[:3] != (n, channels + 1, frames)
        ):
            raise ValueError(f"global_input must be ({n}, {channels + 1}, {frames}, gh, gw), "
                             f"got shape {tuple(self.global_input.shape)}")
        for name, shape in (("scale", (n,)), ("crop_box", (n, 4)), ("noise_level", (n,))):
            if tuple(getattr(self, name).shape) != shape:
                raise ValueError(f"{name} must have shape {shape}, got {tuple(getattr(self, name).shape)}")
        if self.keys is not None and len(self.keys) != n:
            raise ValueError(f"keys must hold {n} entries, got {len(self.keys)}")

    @classmethod
    def build(
        cls,
        lr_up: torch.Tensor,
        global_frame: torch.Tensor | None,
        masks: torch.Tensor | None,
        scale: float | torch.Tensor,
        crop_box: torch.Tensor,
        noise_level: float | torch.Tensor,
        keys: Sequence[Hashable] | None = None,
    ) -> "WindowConditions":
        """From the tiling engine's pieces: lr_up (N, C, T, h, w); global_frame (C, T, gh, gw) shared by the clip
        (or None without global branch); masks (N, 1, gh, gw) in {0, 1}, the same for every frame; scale and
        noise_level scalars or (N,); crop_box (N, 4) (x0, y0, x1, y1) in [0, 1]."""
        n, _, frames = lr_up.shape[:3]
        global_input = None
        if global_frame is not None:
            frame = global_frame.to(lr_up).expand(n, *global_frame.shape)             # (N, C, T, gh, gw)
            mask = masks.to(lr_up)[:, :, None].expand(-1, -1, frames, -1, -1)         # (N, 1, T, gh, gw)
            global_input = torch.cat([frame, mask], dim=1)

        def per_window(value: float | torch.Tensor) -> torch.Tensor:
            return torch.as_tensor(value, dtype=lr_up.dtype, device=lr_up.device).reshape(-1).expand(n)

        return cls(lr_up, global_input, per_window(scale), crop_box.to(lr_up), per_window(noise_level),
                   None if keys is None else tuple(keys))

    def __len__(self) -> int:
        return self.lr_up.shape[0]

    def select(self, rows: Sequence[int]) -> "WindowConditions":
        """The conditions of the given rows only (same order)."""
        index = torch.as_tensor(list(rows), dtype=torch.long, device=self.lr_up.device)
        return WindowConditions(
            lr_up=self.lr_up[index],
            global_input=None if self.global_input is None else self.global_input[index],
            scale=self.scale[index],
            crop_box=self.crop_box[index],
            noise_level=self.noise_level[index],
            keys=None if self.keys is None else tuple(self.keys[i] for i in rows),
        )


def full_frame_conditions(lr_up: torch.Tensor, scale: float, noise_level: float = 0.0) -> WindowConditions:
    """Conditions for the full-frame mode: one window = the whole frame (the quadratic-cost baseline).

    lr_up: (N, C, T, H, W) in [-1, 1], whole upsampled frames (H, W multiples of twice the token patch, so the
    global branch, which sees G = the frame itself, gets a quarter of the tokens). The mask is all ones and the
    crop box is (0, 0, 1, 1).
    """
    n = lr_up.shape[0]
    mask = torch.ones_like(lr_up[:, :1])
    return WindowConditions(
        lr_up=lr_up,
        global_input=torch.cat([lr_up, mask], dim=1),
        scale=torch.full((n,), float(scale), device=lr_up.device),
        crop_box=torch.tensor([[0.0, 0.0, 1.0, 1.0]], device=lr_up.device).expand(n, 4),
        noise_level=torch.full((n,), float(noise_level), device=lr_up.device),
    )


class ConditionEmbedder(nn.Module):
    """Embeds (scale k, crop box, noise level) into the timestep-embedding space: -> (N, D), zero at init.

    Each scalar gets a sinusoidal embedding (k as 250·log2 k, the others times 1000, so the useful range spans
    the usual 0-1000 timestep range), then a two-layer MLP whose output layer starts at zero. With
    `use_position=False` the crop box is replaced by a constant, so the output does not depend on it.
    """

    def __init__(self, dim: int, freq_dim: int = 64, use_position: bool = True):
        super().__init__()
        self.use_position = use_position
        self.freq_dim = freq_dim
        self.proj = Timesteps(freq_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.mlp = nn.Sequential(
            nn.Linear(N_CONDITION_SCALARS * freq_dim, dim), nn.SiLU(), zero_init(nn.Linear(dim, dim))
        )

    def forward(self, scale: torch.Tensor, crop_box: torch.Tensor, noise_level: torch.Tensor) -> torch.Tensor:
        """scale: (N,) > 0; crop_box: (N, 4) in [0, 1]; noise_level: (N,) in [0, 1]. Returns (N, D)."""
        if not self.use_position:
            crop_box = torch.zeros_like(crop_box)
        log_scale = 250.0 * torch.log2(scale.float())[:, None]
        values = torch.cat([log_scale, 1000.0 * crop_box.float(), 1000.0 * noise_level.float()[:, None]], dim=1)
        freqs = self.proj(rearrange(values, "n k -> (n k)"))                           # (N·6, freq_dim)
        freqs = rearrange(freqs, "(n k) f -> n (k f)", k=N_CONDITION_SCALARS)          # (N, 6·freq_dim)
        return self.mlp(freqs.to(self.mlp[0].weight.dtype))

"""Per-window conditions of the PatchVSR adapter and their embedding (scale, crop box, noise-augmentation level and,
for models trained on real-world degradations, the degradation strength, given or estimated from the window).

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
from torch.nn import functional as F

from patchvsr.models.layers import zero_init

# Scalars fed to the condition embedder, in this order: log2 scale, crop x0, y0, x1, y1, noise level, and the
# degradation strength where the model has that condition.
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
    keys: N hashable cache keys (window indices in the plan), or None to compute branch features afresh;
    degradation: (N,) in [0, 1], how far the LR input is from a clean downscale (`patchvsr.train.realistic`'s
        strength), or None: a model with that condition estimates it from lr_up; other models ignore it.
    """

    lr_up: torch.Tensor
    global_input: torch.Tensor | None
    scale: torch.Tensor
    crop_box: torch.Tensor
    noise_level: torch.Tensor
    keys: tuple[Hashable, ...] | None = None
    degradation: torch.Tensor | None = None

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
        if self.degradation is not None and tuple(self.degradation.shape) != (n,):
            raise ValueError(f"degradation must have shape ({n},), got {tuple(self.degradation.shape)}")
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
        degradation: float | torch.Tensor | None = None,
    ) -> "WindowConditions":
        """Conditions from the tiling engine's pieces.

        Args:
            lr_up (torch.Tensor): (N, C, T, h, w) in [-1, 1], the upsampled LR windows.
            global_frame (torch.Tensor, *optional*): (C, T, gh, gw) in [-1, 1], G shared by the clip; None without
                global branch.
            masks (torch.Tensor, *optional*): (N, 1, gh, gw) in {0, 1}, the same for every frame; needed with
                `global_frame`.
            scale (float or torch.Tensor): k > 0, a scalar or (N,).
            crop_box (torch.Tensor): (N, 4) (x0, y0, x1, y1) in [0, 1].
            noise_level (float or torch.Tensor): in [0, 1], a scalar or (N,).
            keys (Sequence[Hashable], *optional*): N cache keys.
            degradation (float or torch.Tensor, *optional*): in [0, 1], a scalar or (N,); None: estimated by the
                model.

        Returns:
            WindowConditions: every tensor in lr_up's dtype and device; global_input (N, C + 1, T, gh, gw).

        Raises:
            ValueError: if the shapes do not fit together.
        """
        n, _, frames = lr_up.shape[:3]
        global_input = None
        if global_frame is not None:
            frame = global_frame.to(lr_up).expand(n, *global_frame.shape)             # (N, C, T, gh, gw)
            mask = masks.to(lr_up)[:, :, None].expand(-1, -1, frames, -1, -1)         # (N, 1, T, gh, gw)
            global_input = torch.cat([frame, mask], dim=1)

        def per_window(value: float | torch.Tensor) -> torch.Tensor:
            return torch.as_tensor(value, dtype=lr_up.dtype, device=lr_up.device).reshape(-1).expand(n)

        return cls(lr_up, global_input, per_window(scale), crop_box.to(lr_up), per_window(noise_level),
                   None if keys is None else tuple(keys), None if degradation is None else per_window(degradation))

    def __len__(self) -> int:
        return self.lr_up.shape[0]

    def select(self, rows: Sequence[int]) -> "WindowConditions":
        """The conditions of the given rows only (same order).

        Args:
            rows (Sequence[int]): M row indices in [0, N).

        Returns:
            WindowConditions: M rows.
        """
        index = torch.as_tensor(list(rows), dtype=torch.long, device=self.lr_up.device)
        return WindowConditions(
            lr_up=self.lr_up[index],
            global_input=None if self.global_input is None else self.global_input[index],
            scale=self.scale[index],
            crop_box=self.crop_box[index],
            noise_level=self.noise_level[index],
            keys=None if self.keys is None else tuple(self.keys[i] for i in rows),
            degradation=None if self.degradation is None else self.degradation[index],
        )


def full_frame_conditions(lr_up: torch.Tensor, scale: float, noise_level: float = 0.0) -> WindowConditions:
    """Conditions for the full-frame mode: one window = the whole frame (the quadratic-cost baseline).

    The global branch sees G = the frame itself, so it gets a quarter of the tokens; the mask is all ones and
    the crop box is (0, 0, 1, 1).

    Args:
        lr_up (torch.Tensor): (N, C, T, H, W) in [-1, 1], whole upsampled frames, H and W multiples of twice
            the token patch.
        scale (float): the upscaling factor k > 0.
        noise_level (float, *optional*, defaults to 0.0): in [0, 1], the condition's noise-augmentation level.

    Returns:
        WindowConditions: N rows, global_input (N, C + 1, T, H, W); scale and noise_level float32, on lr_up's
        device.
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


class DegradationEstimator(nn.Module):
    """Estimates the degradation strength of LR windows: lr_up (N, C, T, h, w) in [-1, 1], scale (N,) -> (N,) in
    [0, 1].

    Noise and compression show in the quiet parts of a window, the scene in its busy parts, so the estimator
    looks at fixed statistics rather than learned features (a conv net with mean pooling learned nothing in
    53 k samples: docs/lite_model_notes.md): for luma and the two colour differences, the high-pass residual
    (input minus its 3×3 mean) at 1, 2 and 4 px; the log of its energy in 4×4 cells; the 5, 25 and 50 %
    quantiles of those over the window and its frames. A two-layer MLP maps the 27 numbers and log2 k to the
    strength (through a sigmoid). The statistics cost about 0.1 kFLOP per window pixel, the MLP nothing.
    """

    LEVELS, QUANTILES, CELL = 3, (0.05, 0.25, 0.5), 4
    # Affine map of the log energies (measured: mean -11.9, std 3.6 on training windows) into about [-1, 1].
    LOG_SHIFT, LOG_SPREAD = 12.0, 3.5

    def __init__(self, channels: int = 3, width: int = 64):
        super().__init__()
        if channels != 3:
            raise ValueError(f"the degradation estimator reads RGB windows, got {channels} channels")
        self.register_buffer("quantiles", torch.tensor(self.QUANTILES), persistent=False)
        self.mlp = nn.Sequential(nn.Linear(3 * self.LEVELS * len(self.QUANTILES) + 1, width), nn.SiLU(),
                                 nn.Linear(width, 1))

    def energy_maps(self, lr_up: torch.Tensor) -> list[torch.Tensor]:
        """The log high-pass energy in 4x4 cells per channel (luma, two colour differences), one map per level.

        Every map is computed frame by frame, so the maps of some frames are those frames' slice of the maps.

        Args:
            lr_up (torch.Tensor): (N, 3, T, h, w) in [-1, 1].

        Returns:
            list[torch.Tensor]: LEVELS maps (N, 3, T, h_l, w_l) float32, h_l = h / (CELL 2^l).
        """
        frames = lr_up.shape[2]
        x = rearrange(lr_up.float(), "n c t h w -> (n t) c h w")
        luma = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
        x = torch.stack([luma, x[:, 2] - luma, x[:, 0] - luma], dim=1)
        maps = []
        for level in range(self.LEVELS):
            if level:
                x = F.avg_pool2d(x, 2)
            residual = x - F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
            energy = torch.log(F.avg_pool2d(residual.square(), self.CELL) + 1e-7)
            maps.append(rearrange(energy, "(n t) c h w -> n c t h w", t=frames))
        return maps

    def statistics(self, lr_up: torch.Tensor | None = None, maps: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Quantiles of the log high-pass energy per channel and level, over the window and its frames.

        Args:
            lr_up (torch.Tensor, *optional*): (N, 3, T, h, w) in [-1, 1]; or
            maps (list[torch.Tensor], *optional*): its `energy_maps` (or a slice of their frames).

        Returns:
            torch.Tensor: (N, 27) float32, about [-1, 1] (`LOG_SHIFT`, `LOG_SPREAD`).
        """
        maps = self.energy_maps(lr_up) if maps is None else maps
        columns = [rearrange(torch.quantile(energy.flatten(2), self.quantiles, dim=-1), "q n c -> n (c q)")
                   for energy in maps]
        return (torch.cat(columns, dim=1) + self.LOG_SHIFT) / self.LOG_SPREAD

    def forward(self, lr_up: torch.Tensor | None, scale: torch.Tensor,
                maps: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Estimate the degradation strength of each window.

        Args:
            lr_up (torch.Tensor): (N, 3, T, h, w) in [-1, 1] (None when `maps` are given).
            scale (torch.Tensor): (N,) upscaling factor k > 0.
            maps (list[torch.Tensor], *optional*): the windows' `energy_maps`, computed once for several
                estimates over different frames.

        Returns:
            torch.Tensor: (N,) float32 in [0, 1].
        """
        features = torch.cat([self.statistics(lr_up, maps), torch.log2(scale.float())[:, None] - 1.5], dim=1)
        return torch.sigmoid(self.mlp(features.to(self.mlp[0].weight.dtype)))[:, 0].float()


class ConditionEmbedder(nn.Module):
    """Embeds (scale k, crop box, noise level[, degradation strength]) into the timestep-embedding space:
    -> (N, D), zero at init.

    Each scalar gets a sinusoidal embedding (k as 250·log2 k, the others times 1000, so the useful range spans
    the usual 0-1000 timestep range), then a two-layer MLP whose output layer starts at zero. With
    `use_position=False` the crop box is replaced by a constant, so the output does not depend on it. With
    `use_degradation=True` the degradation strength is a seventh scalar, and `estimator` (a
    `DegradationEstimator`) supplies it where the caller does not.
    """

    def __init__(self, dim: int, freq_dim: int = 64, use_position: bool = True, use_degradation: bool = False,
                 in_channels: int = 3):
        super().__init__()
        self.use_position = use_position
        self.freq_dim = freq_dim
        self.scalars = N_CONDITION_SCALARS + int(use_degradation)
        self.proj = Timesteps(freq_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.mlp = nn.Sequential(
            nn.Linear(self.scalars * freq_dim, dim), nn.SiLU(), zero_init(nn.Linear(dim, dim))
        )
        self.estimator = DegradationEstimator(in_channels) if use_degradation else None

    def forward(self, scale: torch.Tensor, crop_box: torch.Tensor, noise_level: torch.Tensor,
                degradation: torch.Tensor | None = None) -> torch.Tensor:
        """Embed the scalar conditions of N windows.

        Args:
            scale (torch.Tensor): (N,) upscaling factor k > 0.
            crop_box (torch.Tensor): (N, 4) (x0, y0, x1, y1) in [0, 1].
            noise_level (torch.Tensor): (N,) in [0, 1].
            degradation (torch.Tensor, *optional*): (N,) in [0, 1]; required with `use_degradation` (ignored
                without).

        Returns:
            torch.Tensor: (N, D) in the MLP's dtype, zero at init.

        Raises:
            ValueError: with `use_degradation` and no `degradation`.
        """
        if not self.use_position:
            crop_box = torch.zeros_like(crop_box)
        log_scale = 250.0 * torch.log2(scale.float())[:, None]
        columns = [log_scale, 1000.0 * crop_box.float(), 1000.0 * noise_level.float()[:, None]]
        if self.estimator is not None:
            if degradation is None:
                raise ValueError("this embedder conditions on the degradation strength: pass it (or estimate it)")
            columns.append(1000.0 * degradation.float()[:, None])
        freqs = self.proj(rearrange(torch.cat(columns, dim=1), "n k -> (n k)"))        # (N·k, freq_dim)
        freqs = rearrange(freqs, "(n k) f -> n (k f)", k=self.scalars)                 # (N, k·freq_dim)
        return self.mlp(freqs.to(self.mlp[0].weight.dtype))

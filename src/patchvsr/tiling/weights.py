"""Per-window weight maps for fusing window velocities, precomputed once per plan.

Every window's weight map is separable: W_i(y, x) = wy_i(y) * wx_i(x), so a plan stores two short 1-D
profiles per window instead of N full maps. Profiles per fusion mode:

- `weighted` (the paper's multi-patch joint modulation): along each axis a window is either on the primary
  grid (P) or shifted by half a window onto a seam (S). An S profile is the Hann bump sin^2(pi (u + 1/2) / n):
  1 on the seam line it covers, decaying smoothly to 0 towards both sides. A P profile is the same bump, and
  its outer half is held at 1 where no S window overlaps it (at the canvas border). Primary windows are P x P,
  `vseam` P x S, `hseam` S x P and `cross` S x S. At 50 % overlap P and S are complementary
  (sin^2 + cos^2 = 1), so the weights form a partition of unity and blend to 1 everywhere.
- `band`: 1 except across each band of o pixels a window shares with a neighbour, where it falls to 0 as
  cos^2(pi (u + 1/2) / (2 o)), u = 0..o-1 into the band, while the neighbour rises as the complementary sin^2:
  again a partition of unity, with smooth joins at both ends of the band.
- `average`, `none`, `shifted`: every profile is 1 (MultiDiffusion-style uniform average, pasting, or an
  alternating non-overlapping grid).

The per-group total weight sum_i W_i is precomputed too; it is strictly positive on the whole canvas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from patchvsr.tiling.plan import WindowPlan

_AXIS_ROLES = {"primary": ("P", "P"), "vseam": ("P", "S"), "hseam": ("S", "P"), "cross": ("S", "S")}


@dataclass(frozen=True)
class GroupWeights:
    """The windows of one step group and where their fused sum lives.

    indices: window indices of the group, in plan order (also the accumulation order).
    origin: (oy, ox) canvas coordinates of element [0, 0] of the accumulation buffer (<= 0).
    total: (Hb, Wb) float32 > 0 on the canvas: sum of the group's weight maps over the accumulation buffer.
    """

    indices: tuple[int, ...]
    origin: tuple[int, int]
    total: torch.Tensor


@dataclass(frozen=True)
class PlanWeights:
    """Weight profiles of every window of a plan plus per-group totals; build with `plan_weights`.

    wy: (N, h) float32 in [0, 1], wx: (N, w) float32 in [0, 1]; window i's map is wy[i, :, None] * wx[i, None, :].
    uniform: True when every weight is 1 (the fusion may skip the multiply).
    groups: one `GroupWeights` per step group of the plan.
    """

    wy: torch.Tensor
    wx: torch.Tensor
    uniform: bool
    groups: tuple[GroupWeights, ...]

    def maps(self, indices: tuple[int, ...] | list[int]) -> torch.Tensor:
        """Full weight maps of the given windows.

        Args:
            indices (tuple[int, ...] or list[int]): N window indices.

        Returns:
            torch.Tensor: (N, h, w) float32 in [0, 1].
        """
        return self.wy[list(indices), :, None] * self.wx[list(indices), None, :]


def plan_weights(plan: WindowPlan) -> PlanWeights:
    """Precompute the weight profiles and per-group total weights of a plan.

    Args:
        plan (WindowPlan): the plan.

    Returns:
        PlanWeights: profiles wy (N, h) and wx (N, w) float32 in [0, 1], and one `GroupWeights` per step group.

    Raises:
        RuntimeError: if a canvas pixel gets no weight.
    """
    wy, wx = _profiles(plan)
    groups = tuple(_group_weights(plan, wy, wx, g) for g in range(plan.num_groups))
    return PlanWeights(wy, wx, plan.fusion not in ("weighted", "band"), groups)


def hann_bump(size: int) -> torch.Tensor:
    """The Hann bump sin^2(pi (u + 1/2) / size) for u = 0..size-1.

    Args:
        size (int): the bump's length, >= 1.

    Returns:
        torch.Tensor: (size,) float32 in (0, 1]; peak 1 at the centre, > 0 everywhere.
    """
    u = torch.arange(size, dtype=torch.float64)
    return torch.sin(math.pi * (u + 0.5) / size).pow(2).float()


def _profiles(plan: WindowPlan) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-window 1-D profiles (N, h) and (N, w) for the plan's fusion mode."""
    (h, w), n = plan.window, len(plan.windows)
    if plan.fusion == "band":
        (Hp, Wp) = plan.padded
        rows = [_band_profile(window.y0, h, Hp, plan.overlap) for window in plan.windows]
        cols = [_band_profile(window.x0, w, Wp, plan.overlap) for window in plan.windows]
        return torch.stack(rows), torch.stack(cols)
    if plan.fusion != "weighted":
        return torch.ones(n, h), torch.ones(n, w)
    (Hp, Wp) = plan.padded
    rows, cols = [], []
    for window in plan.windows:
        role_y, role_x = _AXIS_ROLES[window.kind]
        rows.append(_axis_profile(role_y, window.y0, h, Hp))
        cols.append(_axis_profile(role_x, window.x0, w, Wp))
    return torch.stack(rows), torch.stack(cols)


def _axis_profile(role: str, start: int, size: int, padded: int) -> torch.Tensor:
    """One axis of a `weighted` window: S = Hann bump; P = Hann bump with border-facing halves held at 1."""
    profile = hann_bump(size)
    if role == "P":
        if start == 0:
            profile[: size // 2] = 1.0
        if start + size == padded:
            profile[size // 2 :] = 1.0
    return profile


def _band_profile(start: int, size: int, padded: int, overlap: int) -> torch.Tensor:
    """One axis of a `band` window: 1, with a cos^2 fall over the last `overlap` pixels when a neighbour
    follows and the complementary sin^2 rise over the first ones when one precedes."""
    profile = torch.ones(size)
    u = torch.arange(overlap, dtype=torch.float64)
    fall = torch.cos(math.pi * (u + 0.5) / (2 * overlap)).pow(2).float()
    if start > 0:
        profile[:overlap] = 1.0 - fall
    if start + size < padded:
        profile[size - overlap:] = fall
    return profile


def _group_weights(plan: WindowPlan, wy: torch.Tensor, wx: torch.Tensor, group: int) -> GroupWeights:
    """Accumulation buffer origin and total weight of one step group; RuntimeError if a canvas pixel has none."""
    indices = plan.group(group)
    boxes = plan.boxes(indices)
    (oy, ox), (ey, ex) = boxes[:, :2].amin(0).tolist(), boxes[:, 2:].amax(0).tolist()
    oy, ox = min(oy, 0), min(ox, 0)
    total = torch.zeros(ey - oy, ex - ox)
    for index, (y0, x0, y1, x1) in zip(indices, boxes.tolist()):
        total[y0 - oy : y1 - oy, x0 - ox : x1 - ox] += wy[index, :, None] * wx[index, None, :]
    H, W = plan.canvas
    if not bool((total[-oy : H - oy, -ox : W - ox] > 0).all()):
        raise RuntimeError(f"plan leaves canvas pixels without weight: {plan}")
    return GroupWeights(indices, (oy, ox), total.clamp_min(torch.finfo(torch.float32).tiny))

"""Global guidance for windows: the whole frame at window size, and where each window sits in it.

The global context branch sees G, the whole (unpadded) canvas resized to the window size, concatenated with
a binary position mask M_i that is 1 on the window's footprint in G. The condition embedder additionally
gets the window's normalised crop box (x0, y0, x1, y1) in [0, 1], relative to the unpadded canvas; parts of a
window that lie in the mirror padding are clipped off both.
"""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

from patchvsr.sizes import HW
from patchvsr.tiling.plan import WindowPlan


def global_frame(canvas: torch.Tensor, size: HW) -> torch.Tensor:
    """Resize a whole canvas to the guidance size with an antialiased bilinear filter.

    Args:
        canvas (torch.Tensor): (C, T, H, W) float, any range.
        size (HW): (gh, gw) of the guidance frame.

    Returns:
        torch.Tensor: (C, T, gh, gw), same dtype and range (a bilinear filter never overshoots).
    """
    frames = einops.rearrange(canvas, "c t h w -> t c h w")
    resized = F.interpolate(frames, size=tuple(size), mode="bilinear", antialias=True, align_corners=False)
    return einops.rearrange(resized, "t c h w -> c t h w")


def clipped_boxes(plan: WindowPlan, indices: tuple[int, ...] | list[int]) -> torch.Tensor:
    """Window boxes clipped to the unpadded canvas.

    Args:
        plan (WindowPlan): the plan.
        indices (tuple[int, ...] or list[int]): N window indices.

    Returns:
        torch.Tensor: (N, 4) int64 rows (y0, x0, y1, x1) in [0, H] x [0, W], non-empty.
    """
    H, W = plan.canvas
    boxes = plan.boxes(indices)
    upper = torch.tensor([H, W, H, W])
    return torch.minimum(boxes.clamp_min(0), upper)


def crop_boxes(plan: WindowPlan, indices: tuple[int, ...] | list[int]) -> torch.Tensor:
    """Normalised crop boxes of the given windows, clipped to the unpadded canvas.

    Args:
        plan (WindowPlan): the plan.
        indices (tuple[int, ...] or list[int]): N window indices.

    Returns:
        torch.Tensor: (N, 4) float32 rows (x0, y0, x1, y1) in [0, 1].
    """
    H, W = plan.canvas
    y0, x0, y1, x1 = clipped_boxes(plan, indices).double().unbind(1)
    return torch.stack([x0 / W, y0 / H, x1 / W, y1 / H], dim=1).float()


def position_masks(
    plan: WindowPlan, indices: tuple[int, ...] | list[int], size: HW | None = None
) -> torch.Tensor:
    """Binary position masks M_i on the global frame.

    A guidance pixel is 1 when its footprint on the canvas overlaps the window's clipped box, so every window
    marks at least one pixel.

    Args:
        plan (WindowPlan): the plan.
        indices (tuple[int, ...] or list[int]): N window indices.
        size (HW, *optional*): (gh, gw) of the global frame, default the plan's window size.

    Returns:
        torch.Tensor: (N, 1, gh, gw) float32 in {0, 1}.
    """
    (H, W), (gh, gw) = plan.canvas, tuple(size or plan.window)
    y0, x0, y1, x1 = clipped_boxes(plan, indices).unbind(1)
    rows = _overlaps(torch.arange(gh), H, gh, y0, y1).float()  # (N, gh)
    cols = _overlaps(torch.arange(gw), W, gw, x0, x1).float()  # (N, gw)
    return rows[:, None, :, None] * cols[:, None, None, :]  # (N, 1, gh, gw)


def _overlaps(cells: torch.Tensor, extent: int, count: int, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """(N, count) bool: cell k covers [k*extent/count, (k+1)*extent/count), overlapping [lo, hi)? (exact ints)."""
    starts, ends = cells * extent, (cells + 1) * extent
    return (starts[None, :] < hi[:, None] * count) & (ends[None, :] > lo[:, None] * count)

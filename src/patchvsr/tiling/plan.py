"""Window plans: which fixed-size windows of a canvas the model sees at each sampling step.

A canvas of (H, W) latent pixels is covered by a grid of R x K *primary* windows of size (h, w), placed with a
stride of (h - o, w - o) for an overlap o (0 except in `band` fusion): R = ceil((H - o) / (h - o)) (at least
1), K likewise. The grid starts at the top-left corner; where it sticks out past the bottom or right edge, the
canvas is extended by mirror (reflect) padding, which is defined for any amount of padding and any canvas size
(a 1-px canvas pads by repetition). The padding is dropped again after fusion.

Per fusion mode (see `FUSION_MODES`):
- `band` (the one-step default): primary windows overlapping their neighbours by a band of o pixels
  (`band_overlap`: a quarter of the window), blended across the band with complementary smooth ramps: about
  (h / (h - o))^2 windows per canvas area, 1.8x `none` at o = h / 4 (`weighted`: about 4x).
- `weighted`, `average`: primary windows plus *auxiliary* windows shifted by half a window and centred on
  every vertical seam (`vseam`), every horizontal seam (`hseam`) and every seam crossing (`cross`): a 50 %
  overlapping grid of (2R - 1) x (2K - 1) windows, all used at every step (the paper's joint modulation).
- `none`: the R x K primary windows only (pasted side by side: the seam-prone baseline).
- `shifted`: even steps use the primary grid (group 0); odd steps use the grid shifted by half a window in
  every axis that has more than one window (group 1, kind `shifted`; a one-window canvas has no group 1).
  Its windows start half a window before the canvas, so they also read mirror padding on the top/left;
  windows lying wholly in padding are dropped.
"""

from __future__ import annotations

import math
import numbers
from collections import Counter
from dataclasses import dataclass, field

import einops
import torch
import torch.nn.functional as F

from patchvsr.sizes import HW

FUSION_MODES = ("band", "weighted", "average", "none", "shifted")
WINDOW_KINDS = ("primary", "vseam", "hseam", "cross", "shifted")


@dataclass(frozen=True)
class Window:
    """One window of a plan: its place in the plan, its kind and its box in canvas coordinates.

    The box (y0, x0) .. (y0 + h, x0 + w) may extend past the canvas (into the mirror padding); `group` is the
    step parity that uses it (always 0 except for the half-shifted grid of `shifted` fusion).
    """

    index: int
    kind: str
    group: int
    y0: int
    x0: int


@dataclass(frozen=True)
class WindowPlan:
    """Windows covering a (H, W) canvas with fixed (h, w) windows for one fusion mode; build with `make_plan`.

    Attributes:
        canvas: (H, W) of the unpadded canvas, >= 1 each.
        window: (h, w) window size, >= 1 each.
        fusion: one of `FUSION_MODES`.
        windows: every window of the plan, indexed by `Window.index` (a stable cache key per clip).
        overlap: pixels shared by neighbouring primary windows (> 0 for `band` fusion only, else 0).
    """

    canvas: HW
    window: HW
    fusion: str
    windows: tuple[Window, ...] = field(repr=False)
    overlap: int = 0

    def __post_init__(self) -> None:
        _check_arguments(self.canvas, self.window, self.fusion)
        if [w.index for w in self.windows] != list(range(len(self.windows))):
            raise ValueError("window indices must be 0..N-1 in order")
        if (self.overlap > 0) != (self.fusion == "band") or self.overlap >= min(self.window):
            raise ValueError(f"overlap {self.overlap} does not fit {self.fusion} fusion with window {self.window}")

    @property
    def stride(self) -> tuple[int, int]:
        """(h - o, w - o): the step from one primary window to the next."""
        return tuple(m - self.overlap for m in self.window)

    @property
    def grid(self) -> tuple[int, int]:
        """(R, K): rows and columns of primary windows."""
        return tuple(_grid_count(n, m, self.overlap) for n, m in zip(self.canvas, self.window))

    @property
    def padded(self) -> HW:
        """((R - 1) * (h - o) + h, likewise for w): the canvas size covered by the primary grid, padding
        included."""
        return tuple((g - 1) * s + m for g, s, m in zip(self.grid, self.stride, self.window))

    @property
    def num_groups(self) -> int:
        """Number of alternating window groups: 2 for `shifted` fusion, else 1."""
        return 1 + max(w.group for w in self.windows)

    def group(self, step_index: int) -> tuple[int, ...]:
        """Indices of the windows that run at sampling step `step_index`.

        Args:
            step_index (int): the sampling step, >= 0.

        Returns:
            tuple[int, ...]: the window indices of the step's group, in plan order.
        """
        parity = step_index % self.num_groups
        return tuple(w.index for w in self.windows if w.group == parity)

    @property
    def windows_per_step(self) -> float:
        """Model calls per sampling step, averaged over the alternating groups."""
        return len(self.windows) / self.num_groups

    def seams(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Primary seam positions inside the canvas; a seam lies between y-1 and y.

        Where neighbouring windows overlap (`band`), the seam is the middle of the band they share.

        Returns:
            tuple[tuple[int, ...], tuple[int, ...]]: (rows y, columns x).
        """
        (sy, sx), (rows, cols), half = self.stride, self.grid, self.overlap // 2
        return (tuple(y for y in (r * sy + half for r in range(1, rows)) if y < self.canvas[0]),
                tuple(x for x in (c * sx + half for c in range(1, cols)) if x < self.canvas[1]))

    def boxes(self, indices: tuple[int, ...] | list[int]) -> torch.Tensor:
        """Pixel boxes of the given windows in canvas coordinates.

        Args:
            indices (tuple[int, ...] or list[int]): N window indices.

        Returns:
            torch.Tensor: (N, 4) int64 rows (y0, x0, y1, x1); coordinates may lie outside [0, H) x [0, W)
            where a window reads mirror padding.
        """
        h, w = self.window
        starts = torch.tensor([[self.windows[i].y0, self.windows[i].x0] for i in indices], dtype=torch.int64)
        return torch.cat([starts, starts + torch.tensor([h, w])], dim=1).reshape(-1, 4)

    def crop(self, canvas: torch.Tensor, indices: tuple[int, ...] | list[int]) -> torch.Tensor:
        """Crop windows out of a canvas with this plan's boxes and mirror padding.

        Args:
            canvas (torch.Tensor): (C, T, s*H, s*W), any dtype/device, for an integer s >= 1 (s > 1: a
                pixel-space condition for a latent-space plan; boxes and padding are scaled by s).
            indices (tuple[int, ...] or list[int]): N window indices.

        Returns:
            torch.Tensor: (N, C, T, s*h, s*w), canvas's dtype and device.

        Raises:
            ValueError: if the canvas is not an integer multiple of the plan's.
        """
        scale = canvas_scale(self, canvas.shape[-2:])
        starts = self.boxes(indices)[:, :2].to(canvas.device) * scale
        h, w = (scale * m for m in self.window)
        rows = mirror_index(starts[:, :1] + torch.arange(h, device=canvas.device), canvas.shape[-2])
        cols = mirror_index(starts[:, 1:] + torch.arange(w, device=canvas.device), canvas.shape[-1])
        crops = canvas[:, :, rows[:, :, None], cols[:, None, :]]  # (C, T, N, h, w)
        return einops.rearrange(crops, "c t n h w -> n c t h w")

    def pad(self, canvas: torch.Tensor, origin: tuple[int, int], size: HW) -> torch.Tensor:
        """The mirror-padded region of a canvas that starts at `origin`; window crops are then plain slices of
        it (what the fusion does once per step instead of per-window gathers).

        Args:
            canvas (torch.Tensor): (C, T, H, W), any dtype.
            origin (tuple[int, int]): (oy, ox) in canvas coordinates, may be < 0.
            size (HW): (Hb, Wb) of the region.

        Returns:
            torch.Tensor: (C, T, Hb, Wb), canvas's dtype and device.
        """
        (oy, ox), (height, width), (H, W) = origin, size, canvas.shape[-2:]
        top, left, bottom, right = -oy, -ox, oy + height - H, ox + width - W
        if min(top, left, bottom, right) >= 0 and max(top, bottom) < H and max(left, right) < W:
            return F.pad(canvas, (left, right, top, bottom), mode="reflect")  # fast path, same values
        rows = mirror_index(torch.arange(oy, oy + height, device=canvas.device), canvas.shape[-2])
        cols = mirror_index(torch.arange(ox, ox + width, device=canvas.device), canvas.shape[-1])
        return canvas.index_select(-2, rows).index_select(-1, cols)

    def table(self) -> str:
        """One line per window: index, kind, step group and box, for users who want to see every window.

        Returns:
            str: the lines joined by newlines.
        """
        (h, w) = self.window
        return "\n".join(
            f"{win.index:5d} {win.kind:8s} g{win.group} y {win.y0}:{win.y0 + h} x {win.x0}:{win.x0 + w}"
            for win in self.windows
        )

    def __str__(self) -> str:
        (H, W), (h, w), (Hp, Wp) = self.canvas, self.window, self.padded
        counts = Counter(win.kind for win in self.windows)
        kinds = " + ".join(f"{counts[k]} {k}" for k in WINDOW_KINDS if counts[k])
        steps = "" if self.num_groups == 1 else f", alternating in {self.num_groups} groups"
        overlap = f" overlapping by {self.overlap}" if self.overlap else ""
        return (
            f"WindowPlan {self.fusion}: canvas {H}x{W} (padded {Hp}x{Wp}, reflect), window {h}x{w}{overlap}, "
            f"{kinds} = {len(self.windows)} windows{steps}, {self.windows_per_step:g} per step"
        )


def band_overlap(window: HW) -> int:
    """Default overlap of `band` fusion for (h, w) windows.

    Args:
        window (HW): (h, w) window size, >= 1 each.

    Returns:
        int: a quarter of the smaller side rounded down to an even number, at least 1 (0 for a 1-px window,
        which cannot overlap).
    """
    side = min(window)
    return 0 if side < 2 else max(1, side // 8 * 2)


def make_plan(canvas: HW, window: HW, fusion: str = "weighted",
              overlap: int | None = None) -> WindowPlan:
    """Plan the windows of a (H, W) canvas for (h, w) windows and a fusion mode (see the module docstring).

    Args:
        canvas (HW): (H, W) of the unpadded canvas, >= 1 each.
        window (HW): (h, w) window size, >= 1 each.
        fusion (str, *optional*, defaults to "weighted"): one of `FUSION_MODES`.
        overlap (int, *optional*): pixels neighbouring `band` windows share, in [1, min(h, w)); default
            `band_overlap(window)`; ignored by the other modes. A 1-px window cannot overlap: its `band` plan is
            the `none` plan.

    Returns:
        WindowPlan: the plan.

    Raises:
        ValueError: for a bad size, fusion mode or overlap.
    """
    _check_arguments(canvas, window, fusion)
    canvas, window = tuple(int(n) for n in canvas), tuple(int(n) for n in window)
    if fusion != "band":
        overlap = 0
    elif overlap is None:
        overlap = band_overlap(window)
    elif not isinstance(overlap, int) or not 1 <= overlap < min(window):
        raise ValueError(f"band overlap must be an integer in [1, {min(window)}), got {overlap!r}")
    if fusion == "band" and not overlap:
        fusion = "none"
    rows, cols = (_grid_count(n, m, overlap) for n, m in zip(canvas, window))
    (h, w), (H, W) = window, canvas
    half_h, half_w = h // 2, w // 2
    primary = [(0, "primary", r * (h - overlap), c * (w - overlap)) for r in range(rows) for c in range(cols)]
    if fusion in ("none", "band") or (fusion == "shifted" and rows == cols == 1):
        layout = primary  # a single window has no seam to move
    elif fusion == "shifted":
        ys = _shifted_starts(rows, h, H)
        xs = _shifted_starts(cols, w, W)
        layout = primary + [(1, "shifted", y, x) for y in ys for x in xs]
    else:
        vseam = [(0, "vseam", r * h, c * w + half_w) for r in range(rows) for c in range(cols - 1)]
        hseam = [(0, "hseam", r * h + half_h, c * w) for r in range(rows - 1) for c in range(cols)]
        cross = [(0, "cross", r * h + half_h, c * w + half_w) for r in range(rows - 1) for c in range(cols - 1)]
        layout = primary + vseam + hseam + cross
    windows = tuple(Window(i, kind, g, y, x) for i, (g, kind, y, x) in enumerate(layout))
    return WindowPlan(canvas, window, fusion, windows, overlap)


def _grid_count(extent: int, size: int, overlap: int) -> int:
    """Windows of `size` with `overlap` needed to cover `extent` pixels from 0 (at least 1)."""
    return max(1, math.ceil((extent - overlap) / (size - overlap)))


def _check_arguments(canvas: HW, window: HW, fusion: str) -> None:
    """ValueError naming the bad value unless both sizes are two ints >= 1 and `fusion` is known."""
    for name, size in (("canvas", canvas), ("window", window)):
        if not isinstance(size, (tuple, list)) or len(size) != 2 or not all(isinstance(n, numbers.Integral) and n >= 1 for n in size):
            raise ValueError(f"{name} must be two integer sizes >= 1, got {size}")
    if fusion not in FUSION_MODES:
        raise ValueError(f"fusion must be one of {FUSION_MODES}, got {fusion!r}")


def _shifted_starts(count: int, size: int, extent: int) -> list[int]:
    """Starts of the half-shifted grid along one axis, keeping windows that overlap [0, extent)."""
    if count == 1:
        return [0]
    return [k * size - size // 2 for k in range(count + 1) if k * size - size // 2 < extent]


def mirror_index(coords: torch.Tensor, size: int) -> torch.Tensor:
    """Map integer coordinates (any range) to [0, size) by mirror reflection without edge repeat.

    For size 1 every coordinate maps to 0; otherwise the pattern is 0, 1, .., size-1, size-2, .., 1, 0, 1, ..
    (period 2 * (size - 1)), also for negative coordinates.

    Args:
        coords (torch.Tensor): int64, any shape.
        size (int): the axis length, >= 1.

    Returns:
        torch.Tensor: int64 in [0, size), coords' shape.
    """
    if size == 1:
        return torch.zeros_like(coords)
    period = 2 * (size - 1)
    folded = coords.remainder(period)
    return torch.where(folded >= size, period - folded, folded)


def canvas_scale(plan: WindowPlan, shape: HW | torch.Size) -> int:
    """Integer factor s with shape == (s*H, s*W) for the plan's canvas (H, W).

    Args:
        plan (WindowPlan): the plan.
        shape (HW or torch.Size): (height, width) of a canvas, e.g. `tensor.shape[-2:]`.

    Returns:
        int: s >= 1.

    Raises:
        ValueError: if the shape is no integer multiple of the plan's canvas.
    """
    (H, W), (height, width) = plan.canvas, tuple(shape)
    scale = height // H
    if scale < 1 or (height, width) != (scale * H, scale * W):
        raise ValueError(f"canvas {height}x{width} is not an integer multiple of the plan's {H}x{W}")
    return scale

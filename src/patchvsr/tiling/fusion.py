"""Fused velocity on the whole canvas: run the model on windows in batches and blend their velocities.

`FusedVelocity(plan, denoise)` is the `velocity_fn(z, t, step_index) -> v` that the sampler calls. At each
step it crops the step group's windows from the canvas latent, calls

    denoise(windows: (N, C, T, h, w), t: float, batch: WindowBatch) -> velocity (N, C, T, h, w)

in batches of `batch_size`, and accumulates sum_i W_i * v_i in place into one canvas-sized buffer (only one
batch of window outputs exists at a time), then divides by the precomputed sum_i W_i. Windows are always
accumulated in plan order, so the result does not depend on the batch size (bit for bit, given a model whose
per-window output does not depend on its batch neighbours).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from patchvsr.sizes import HW
from patchvsr.tiling.guidance import crop_boxes, position_masks
from patchvsr.tiling.plan import WindowPlan
from patchvsr.tiling.weights import plan_weights


@dataclass(frozen=True)
class WindowBatch:
    """Everything the model needs about a batch of N windows besides their latent crops.

    indices: window indices in the plan (stable per clip: cache keys for per-window branch features).
    boxes: (N, 4) int64 (y0, x0, y1, x1) in canvas coordinates, may reach into the mirror padding.
    crop_boxes: (N, 4) float32 (x0, y0, x1, y1) in [0, 1] relative to the unpadded canvas.
    masks: (N, 1, gh, gw) float32 in {0, 1}: the windows' footprints on the global frame G.
    scale: the upscaling factor of the clip (a condition input of the model).
    """

    indices: tuple[int, ...]
    boxes: torch.Tensor
    crop_boxes: torch.Tensor
    masks: torch.Tensor
    scale: float


Denoise = Callable[[torch.Tensor, float, WindowBatch], torch.Tensor]


class FusedVelocity:
    """velocity_fn(z, t, step_index) over a whole canvas, built from a window-level `denoise` callable.

    plan: the window plan of the canvas; denoise: see the module docstring; batch_size: windows per model
    call, >= 1; scale: upscaling factor passed on in every `WindowBatch`; mask_size: (gh, gw) of the position
    masks, default the plan's window size. Weights, boxes and masks are computed once, here and per device.
    """

    def __init__(
        self,
        plan: WindowPlan,
        denoise: Denoise,
        batch_size: int = 8,
        scale: float = 1.0,
        mask_size: HW | None = None,
    ) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale!r}")
        self.plan, self.denoise, self.batch_size, self.scale = plan, denoise, batch_size, float(scale)
        self.mask_size = tuple(mask_size or plan.window)
        self.weights = plan_weights(plan)
        self._device_cache: dict[tuple[torch.device, torch.dtype], list] = {}

    def __call__(self, z: torch.Tensor, t: float, step_index: int = 0) -> torch.Tensor:
        """The fused velocity of the whole canvas at time t.

        Args:
            z (torch.Tensor): (C, T, H, W) canvas latent, (H, W) the plan's canvas.
            t (float): time in [0, 1].
            step_index (int, *optional*, defaults to 0): the sampling step, >= 0; `shifted` plans alternate
                window groups with it, other plans ignore it.

        Returns:
            torch.Tensor: the fused velocity (C, T, H, W), z's dtype and device.

        Raises:
            ValueError: for a latent of another shape, or a `denoise` output of another shape than its windows.
        """
        if tuple(z.shape[-2:]) != self.plan.canvas or z.dim() != 4:
            (H, W) = self.plan.canvas
            raise ValueError(f"latent must be (C, T, {H}, {W}), got {tuple(z.shape)}")
        group = step_index % self.plan.num_groups
        total, batches = self._on_device(z.device, torch.promote_types(z.dtype, torch.float32))[group]
        (oy, ox), (H, W), (h, w) = self.weights.groups[group].origin, self.plan.canvas, self.plan.window
        padded = self.plan.pad(z, (oy, ox), total.shape)  # (C, T, Hb, Wb): windows are slices of it
        acc = torch.zeros(*z.shape[:2], *total.shape, dtype=total.dtype, device=z.device)
        for batch, maps, offsets in batches:
            windows = torch.stack([padded[:, :, y0 : y0 + h, x0 : x0 + w] for y0, x0 in offsets])
            velocity = self._denoise(windows, t, batch)
            for n, (y0, x0) in enumerate(offsets):
                target = acc[:, :, y0 : y0 + h, x0 : x0 + w]  # (C, T, h, w) view of the buffer
                if maps is None:
                    target.add_(velocity[n])
                else:
                    target.addcmul_(velocity[n], maps[n])  # += v_n * W_n, W_n: (h, w) broadcast
        acc.div_(total)
        return acc[:, :, -oy : H - oy, -ox : W - ox].to(z.dtype)

    def _denoise(self, windows: torch.Tensor, t: float, batch: WindowBatch) -> torch.Tensor:
        """Run the model on windows (N, C, T, h, w) and check that the velocity has their shape."""
        velocity = self.denoise(windows, t, batch)
        if velocity.shape != windows.shape:
            raise ValueError(f"denoise returned {tuple(velocity.shape)} for windows {tuple(windows.shape)}")
        return velocity

    def _on_device(self, device: torch.device, dtype: torch.dtype) -> list:
        """Per group: (total weight (Hb, Wb), [(WindowBatch, maps (N, h, w) or None, buffer offsets)])."""
        key = (device, dtype)
        if key not in self._device_cache:
            self._device_cache[key] = [self._layout(g, device, dtype) for g in self.weights.groups]
        return self._device_cache[key]

    def _layout(self, group, device: torch.device, dtype: torch.dtype) -> tuple:
        """Precompute one group's batches on a device (done once per plan, device and dtype)."""
        oy, ox = group.origin
        batches = []
        for start in range(0, len(group.indices), self.batch_size):
            indices = group.indices[start : start + self.batch_size]
            batch = WindowBatch(
                indices=indices,
                boxes=self.plan.boxes(indices).to(device),
                crop_boxes=crop_boxes(self.plan, indices).to(device),
                masks=position_masks(self.plan, indices, self.mask_size).to(device),
                scale=self.scale,
            )
            maps = None if self.weights.uniform else self.weights.maps(indices).to(device, dtype)
            offsets = [(y0 - oy, x0 - ox) for y0, x0, _, _ in self.plan.boxes(indices).tolist()]
            batches.append((batch, maps, offsets))
        return group.total.to(device, dtype), batches

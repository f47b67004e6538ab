"""Temporal-consistency term of the stage-2 loss: the frame-to-frame change of the model's error, along motion.

The per-frame loss MSE(z0_hat, z0) does not care whether a frame's error moves with the content or changes
from frame to frame, but a viewer does (flicker), and so does the warp-error metric. With the error
e_k = z0_hat_k - z0_k of window frame k, this term is the mean of (valid · (e_k - warp(e_{k-1})))^2 over
consecutive frames, where warp follows the optical flow of the HR window (DIS, `patchvsr.flow`) and valid
drops occluded pixels (forward-backward check). It is a quadratic form in e, like the MSE, so a model with
unlimited capacity has the same optimum (the conditional mean); a small model spends its capacity on
errors that stay put along the motion, which the temporal detail filter can then average.

The flow is estimated on the CPU from the 8-bit HR window (a few 64 px frames per sample: ~1 ms each).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

from patchvsr.flow import pair_flows, sample_grid


def window_flows(hr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flows between consecutive frames of HR windows, as grid_sample grids.

    Args:
        hr (torch.Tensor): (B, 3, T, h, w) in [-1, 1], T >= 2.

    Returns:
        tuple[torch.Tensor, torch.Tensor]: grid (B·(T-1), h, w, 2) float32 (x, y) normalised to [-1, 1]
        (align_corners=True), on frame k pointing into frame k-1; valid (B, T-1, 1, h, w) float32 in {0, 1};
        both on hr's device.

    Raises:
        ValueError: for windows of fewer than 2 frames.
    """
    count, _, frames, height, width = hr.shape
    if frames < 2:
        raise ValueError("the temporal term needs windows of at least 2 frames")
    frames_u8 = rearrange(((hr.detach().float().cpu() + 1) * 127.5).round().clamp(0, 255).byte(),
                          "b c t h w -> b t h w c").numpy()
    grids, valids = [], []
    for sample in frames_u8:
        for k in range(1, frames):
            (on_current, valid), _ = pair_flows(sample[k - 1], sample[k])
            map_x, map_y = sample_grid(on_current)
            grids.append(np.stack([map_x * 2 / (width - 1) - 1, map_y * 2 / (height - 1) - 1], axis=-1))
            valids.append(valid)
    grid = torch.from_numpy(np.stack(grids)).to(hr.device)
    valid = torch.from_numpy(np.stack(valids).astype(np.float32)).view(count, frames - 1, 1, height, width)
    return grid, valid.to(hr.device)


def temporal_error(error: torch.Tensor, grid: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of (valid · (e_k - warp(e_{k-1})))^2 over the consecutive frames of the windows.

    Args:
        error (torch.Tensor): (B, C, T, h, w) float32, the clean estimate's error.
        grid (torch.Tensor): (B·(T-1), h, w, 2) from `window_flows`.
        valid (torch.Tensor): (B, T-1, 1, h, w) in {0, 1} from `window_flows`.

    Returns:
        torch.Tensor: () scalar, error's dtype.
    """
    previous = rearrange(error[:, :, :-1], "b c t h w -> (b t) c h w")
    warped = F.grid_sample(previous, grid, mode="bilinear", padding_mode="border", align_corners=True)
    warped = rearrange(warped, "(b t) c h w -> b t c h w", b=error.shape[0])
    current = rearrange(error[:, :, 1:], "b c t h w -> b t c h w")
    return ((current - warped) * valid).pow(2).mean()

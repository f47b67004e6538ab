"""Temporal detail filter: motion-compensated averaging of the detail a model adds to the upsampled input.

A per-clip model guesses high-frequency detail for every frame; where that guess is uncertain it changes
from frame to frame in ways the true detail does not, which shows up as flicker (warp error). Averaging each
frame's detail with the detail of its neighbours, warped onto it along optical flow, keeps the detail that
moves with the content and averages out the part that does not. The flow is estimated on the upsampled
INPUT frames (the model's output plays no part in it), occluded pixels are left out by the
forward-backward check, and the average stays inside one clip, so clips remain independent units of work
(resume, Ray). On the public clips this lowered warp error and raised PSNR-Y (docs/RESULTS.md).
"""

from __future__ import annotations

import numpy as np
import torch
from einops import rearrange

from patchvsr.flow import pair_flows, warp


def stabilize_detail(detail: torch.Tensor, frames: np.ndarray, radius: int) -> torch.Tensor:
    """Average each frame's detail over the frames at most `radius` away, aligned by flow, equal weights.

    detail: (T, 3, H, W) float; frames: (T, H, W, 3) uint8, the frames the flow is estimated on.
    Returns a (T, 3, H, W) float32 tensor on detail's device; radius 0 or T = 1 returns detail unchanged.
    """
    count = detail.shape[0]
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    if radius == 0 or count == 1:
        return detail
    own = rearrange(detail.float().cpu(), "t c h w -> t h w c").numpy()
    total = own.copy()
    weight = np.ones(own.shape[:3] + (1,), np.float32)
    for i in range(count):
        for j in range(i + 1, min(count, i + radius + 1)):
            (on_j, valid_j), (on_i, valid_i) = pair_flows(frames[i], frames[j])
            total[j] += warp(own[i], on_j) * valid_j[..., None]
            weight[j] += valid_j[..., None]
            total[i] += warp(own[j], on_i) * valid_i[..., None]
            weight[i] += valid_i[..., None]
    return rearrange(torch.from_numpy(total / weight), "t h w c -> t c h w").to(detail.device)

"""Temporal detail filter: motion-compensated averaging of the detail a model adds to the upsampled input.

A per-clip model guesses high-frequency detail for every frame; where that guess is uncertain it changes
from frame to frame in ways the true detail does not, which shows up as flicker (warp error). Averaging each
frame's detail with the detail of its neighbours up to `radius` frames away, warped onto it along optical
flow, keeps the detail that moves with the content and averages out the part that does not. The flow is
estimated between consecutive upsampled INPUT frames only (the model's output plays no part in it; frames
larger than FLOW_SIDE px are reduced for it) and chained to reach further neighbours, so its cost does not grow
with the radius; occluded pixels are left out by the forward-backward check (a chain stops where every pixel
was occluded once), and the average stays inside one clip, so clips remain independent units of work (resume,
Ray). Each neighbour's detail is warped once, at full size, on the CPU (OpenCV).
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import torch
from einops import rearrange

from patchvsr.flow import chain, pair_flows
from patchvsr.sizes import HW

FLOW_SIDE = 768  # longest side the flow is estimated at; larger frames are reduced (area) for it
MIN_FLOW_SIDE = 16  # DIS needs a few 8-px patches: smaller frames are left unfiltered


def compose(up: torch.Tensor, detail: torch.Tensor, radius: int) -> torch.Tensor:
    """The output frames V_up + detail, the detail filtered over time first when radius > 0.

    Args:
        up (torch.Tensor): (T, 3, H, W) float, the upsampled input in [-1, 1].
        detail (torch.Tensor): (T, 3, H, W) float, the detail the model adds to `up`.
        radius (int): neighbour frames on each side to average the detail over, >= 0 (0 = off).

    Returns:
        torch.Tensor: (T, 3, H, W) float32 in [0, 1] on the CPU.

    Raises:
        ValueError: for radius < 0.
    """
    up, detail = up.float(), detail.float()
    if radius:
        frames = rearrange(((up + 1.0) * 127.5).round().clamp(0, 255).byte(), "t c h w -> t h w c").cpu().numpy()
        detail = stabilize_detail(detail, frames, radius)
    return ((up + detail + 1.0) / 2.0).clamp_(0, 1).cpu()


def stabilize_detail(detail: torch.Tensor, frames: np.ndarray, radius: int) -> torch.Tensor:
    """Average each frame's detail over the frames at most `radius` away, aligned by flow, equal weights.

    Args:
        detail (torch.Tensor): (T, 3, H, W) float.
        frames (np.ndarray): (T, H, W, 3) uint8 RGB, the frames the flow is estimated on.
        radius (int): neighbour frames on each side, >= 0.

    Returns:
        torch.Tensor: (T, 3, H, W) float32 on detail's device (the warps run on the CPU, with OpenCV);
        radius 0, T = 1 or frames smaller than MIN_FLOW_SIDE return detail unchanged.

    Raises:
        ValueError: for radius < 0.
    """
    count, _, height, width = detail.shape
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    if radius == 0 or count == 1 or min(height, width) < MIN_FLOW_SIDE:
        return detail
    source = np.ascontiguousarray(rearrange(detail.float().cpu(), "t c h w -> t h w c").numpy())  # (T, H, W, 3)
    small = _flow_frames(frames)
    ahead, back = [], []  # ahead[k]: (flow on k into k + 1, valid); back[k]: (flow on k + 1 into k, valid)
    for k in range(count - 1):
        on_next, on_this = pair_flows(small[k], small[k + 1])
        ahead.append(on_this)
        back.append(on_next)
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    total = torch.from_numpy(source.copy())  # torch for the sums: multi-threaded, in place
    weight = torch.ones((count, height, width, 1))
    for i in range(count):
        for step in (1, -1):
            path = None  # (flow on frame i into frame j, valid), one link longer per neighbour
            for j in range(i + step, i + step * (radius + 1), step):
                if not 0 <= j < count:
                    break
                link = ahead[j - 1] if step > 0 else back[j]
                path = link if path is None else chain(path, link)
                if not path[1].any():
                    break
                _add_warped(total[i], weight[i], source[j], path, (grid_x, grid_y))
    return rearrange(total.div_(weight), "t h w c -> t c h w").to(detail.device)


def neighbour_warps(count: int, radius: int) -> int:
    """Neighbour details `stabilize_detail` warps for a clip of `count` frames (no chain cut short).

    Args:
        count (int): frames of the clip, >= 0.
        radius (int): neighbour frames on each side, >= 0.

    Returns:
        int: the warps, sum over frames of the neighbours within `radius` on either side.
    """
    return sum(min(radius, i) + min(radius, count - 1 - i) for i in range(count))


def estimate_seconds(size: HW, count: int, radius: int) -> float:
    """Seconds `stabilize_detail` takes on this machine for a clip of `count` frames of `size`.

    One flow pair and one neighbour step (chain, warp, sum) are timed on a random texture of that size and
    multiplied by the clip's flow pairs and `neighbour_warps` (chains cut short by occlusion make the real
    filter a little faster).

    Args:
        size (HW): (H, W) of the frames.
        count (int): frames of the clip.
        radius (int): neighbour frames on each side, >= 0.

    Returns:
        float: seconds, 0 where the filter does nothing (radius 0, one frame, frames below MIN_FLOW_SIDE).
    """
    height, width = size
    if radius == 0 or count < 2 or min(height, width) < MIN_FLOW_SIDE:
        return 0.0
    rng = np.random.default_rng(0)
    frames = np.stack([cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), (0, 0), 2.0)
                       for _ in range(2)])
    small = _flow_frames(frames)
    started = time.perf_counter()
    on_next, on_this = pair_flows(small[0], small[1])
    flow_seconds = time.perf_counter() - started
    grid = tuple(np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)))
    total, weight = torch.zeros(height, width, 3), torch.ones(height, width, 1)
    started = time.perf_counter()
    _add_warped(total, weight, frames[1].astype(np.float32), chain(on_this, on_next), grid)
    warp_seconds = time.perf_counter() - started
    return (count - 1) * flow_seconds + neighbour_warps(count, radius) * warp_seconds


def _add_warped(total: torch.Tensor, weight: torch.Tensor, image: np.ndarray, path: tuple[np.ndarray, np.ndarray],
                grid: tuple[np.ndarray, np.ndarray]) -> None:
    """One neighbour step of the filter: `image` (H, W, C) warped along `path` (flow, valid) is added to `total`
    (H, W, C) where valid, and the validity to `weight` (H, W, 1), in place."""
    warped, mask = (torch.from_numpy(a) for a in _warp(image, *path, grid))
    total.addcmul_(warped, mask)
    weight.add_(mask)


def _flow_frames(frames: np.ndarray) -> list[np.ndarray]:
    """The frames reduced (area) so that the longest side is at most FLOW_SIDE."""
    height, width = frames.shape[1:3]
    factor = FLOW_SIDE / max(height, width)
    if factor >= 1:
        return list(frames)
    size = (max(MIN_FLOW_SIDE, round(width * factor)), max(MIN_FLOW_SIDE, round(height * factor)))
    return [cv2.resize(frame, size, interpolation=cv2.INTER_AREA) for frame in frames]


def _warp(image: np.ndarray, flow: np.ndarray, valid: np.ndarray,
          grid: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """image (H, W, C) float32 sampled (bilinear, edges replicated) where `flow` points, and the validity
    mask (H, W, 1) float32. flow (h, w, 2) in pixels of an (h, w) frame and valid (h, w) bool are resized to
    (H, W); grid: the (H, W) pixel coordinates (x, y) of the image."""
    grid_x, grid_y = grid
    height, width = grid_x.shape
    mask = valid.astype(np.float32)
    if flow.shape[:2] != (height, width):
        scale_x, scale_y = width / flow.shape[1], height / flow.shape[0]
        flow = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR)
        flow[..., 0] *= scale_x
        flow[..., 1] *= scale_y
        mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)
    warped = cv2.remap(image, grid_x + flow[..., 0], grid_y + flow[..., 1], cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
    return warped, mask[..., None]

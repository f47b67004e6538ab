"""Dense optical flow between two frames (OpenCV DIS) with a forward-backward occlusion test, and warping.

Used by the warp-error metric (flow on the reference frames) and by the temporal detail filter of the
PatchVSR upscaler (flow on the bicubic-upsampled input frames, chained from neighbour to neighbour).
Conventions: frames are (H, W, 3) uint8 RGB; a flow is (H, W, 2) float32 (x, y) in pixels, defined on the
frame it is used on and pointing to where that pixel is in the other frame, so `warp(other, flow)` aligns
`other` with this frame.
"""

from __future__ import annotations

import cv2
import numpy as np

# Forward-backward occlusion test: |f + b|^2 < alpha (|f|^2 + |b|^2) + beta (Sundaram et al. 2010).
FB_ALPHA = 0.01
FB_BETA = 0.5


def _gray(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) uint8 gray, the input DIS expects."""
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def sample_grid(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The absolute sampling positions a flow points to, as OpenCV's remap takes them.

    Args:
        flow (np.ndarray): (H, W, 2) float32 (x, y) displacements in pixels.

    Returns:
        tuple[np.ndarray, np.ndarray]: (map_x, map_y), each (H, W) float32.
    """
    h, w = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return grid_x + flow[..., 0], grid_y + flow[..., 1]


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Bilinear backward warp: `image` sampled at the positions `flow` points to (edges replicated).

    Args:
        image (np.ndarray): (H, W, C) float32.
        flow (np.ndarray): (H, W, 2) float32 (x, y) in pixels, on the frame to align with.

    Returns:
        np.ndarray: (H, W, C) float32 (OpenCV drops a trailing axis of 1).
    """
    map_x, map_y = sample_grid(flow)
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _valid(flow: np.ndarray, back: np.ndarray) -> np.ndarray:
    """True where `flow` (on this frame) and `back` (on the other frame, sampled where `flow` points) cancel,
    and the position `flow` points to lies inside the frame."""
    map_x, map_y = sample_grid(flow)
    back_at_source = cv2.remap(back, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    round_trip = np.sum((flow + back_at_source) ** 2, axis=-1)
    magnitude = np.sum(flow**2, axis=-1) + np.sum(back_at_source**2, axis=-1)
    h, w = flow.shape[:2]
    inside = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
    return (round_trip < FB_ALPHA * magnitude + FB_BETA) & inside


def pair_flows(first: np.ndarray, second: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray],
                                                                  tuple[np.ndarray, np.ndarray]]:
    """Flows both ways between two frames, from two DIS runs.

    Args:
        first (np.ndarray): (H, W, 3) uint8 RGB.
        second (np.ndarray): (H, W, 3) uint8 RGB, of first's size.

    Returns:
        tuple[Link, Link]: ((on_second, valid_second), (on_first, valid_first)): `on_second` (H, W, 2) float32
        lives on `second` and points into `first` (so `warp(first, on_second)` aligns first with second);
        valid_* (H, W) bool mark the pixels that pass the forward-backward check and whose source is inside
        the frame.
    """
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    gray_first, gray_second = _gray(first), _gray(second)
    on_second = dis.calc(gray_second, gray_first, None)
    on_first = dis.calc(gray_first, gray_second, None)
    return (on_second, _valid(on_second, on_first)), (on_first, _valid(on_first, on_second))


Link = tuple[np.ndarray, np.ndarray]  # (flow (H, W, 2), valid (H, W) bool) on one frame, into another


def chain(first: Link, then: Link) -> Link:
    """Compose two (flow, valid) links.

    Args:
        first (Link): (flow (H, W, 2) float32, valid (H, W) bool), living on frame A and pointing into B.
        then (Link): the same, living on B and pointing into C.

    Returns:
        Link: (flow (H, W, 2) float32 on A pointing into C, valid (H, W) bool): valid where `first` is and
        `then` is at the B pixel that `first` points to.
    """
    flow, valid = first
    then_flow, then_valid = then
    at_target = warp(np.concatenate([then_flow, then_valid[..., None].astype(np.float32)], axis=-1), flow)
    return flow + at_target[..., :2], valid & (at_target[..., 2] > 0.5)

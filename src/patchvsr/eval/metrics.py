"""Full-reference and temporal metrics for video super-resolution, on single frames.

Conventions (the ones VSR papers report, e.g. BasicSR's `calculate_psnr(..., test_y_channel=True)`):
- Frames are RGB uint8 (H, W, 3) in [0, 255].
- Luma is BT.601 "studio swing": Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255, so Y lies in [16, 235],
  kept as float64 (not rounded).
- PSNR-Y and SSIM-Y drop `crop` pixels at every border first (crop = the scale factor K).
- SSIM-Y uses the Gaussian window of Wang et al. 2004 (11x11, sigma 1.5, K1 = 0.01, K2 = 0.03,
  data_range 255), via scikit-image with population covariances, averaged over the "valid" region.
- Warp error (temporal consistency, after Lai et al. 2018): optical flow is estimated on the REFERENCE
  frames (OpenCV DIS), the previous OUTPUT frame is warped onto the current one, and the mean absolute RGB
  difference in [0, 255] is taken over pixels that pass a forward-backward consistency check
  (Sundaram et al. 2010) and whose source lies inside the frame.
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

from patchvsr.flow import pair_flows, warp

# BT.601 studio-swing luma weights for RGB in [0, 255] (ITU-R BT.601, as MATLAB's rgb2ycbcr).
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0
_Y_OFFSET = 16.0


def rgb_to_y(frame: np.ndarray) -> np.ndarray:
    """BT.601 studio-swing luma of an RGB frame (not rounded).

    Args:
        frame (np.ndarray): (H, W, 3) uint8 RGB in [0, 255].

    Returns:
        np.ndarray: (H, W) float64 luma in [16, 235].
    """
    return frame.astype(np.float64) @ _Y_WEIGHTS + _Y_OFFSET


def _cropped_pair(ref: np.ndarray, out: np.ndarray, crop: int) -> tuple[np.ndarray, np.ndarray]:
    """Luma of both frames with `crop` pixels removed at every border: two (H - 2c, W - 2c) float64."""
    if ref.shape != out.shape:
        raise ValueError(f"frame shapes differ: reference {ref.shape} vs output {out.shape}")
    if crop < 0 or 2 * crop >= min(ref.shape[:2]):
        raise ValueError(f"border crop {crop} leaves nothing of a {ref.shape[1]}x{ref.shape[0]} frame")
    ref_y, out_y = rgb_to_y(ref), rgb_to_y(out)
    if crop:
        ref_y, out_y = ref_y[crop:-crop, crop:-crop], out_y[crop:-crop, crop:-crop]
    return ref_y, out_y


def psnr_y(ref: np.ndarray, out: np.ndarray, crop: int = 0) -> float:
    """PSNR in dB of the BT.601 luma, peak 255.

    Args:
        ref (np.ndarray): (H, W, 3) uint8 RGB, the reference frame.
        out (np.ndarray): (H, W, 3) uint8 RGB, the frame scored, same shape.
        crop (int, optional): pixels dropped at every border first (the scale factor K).

    Returns:
        float: PSNR-Y in dB; inf for identical frames.

    Raises:
        ValueError: the shapes differ, or the crop leaves nothing.
    """
    ref_y, out_y = _cropped_pair(ref, out, crop)
    mse = float(np.mean((ref_y - out_y) ** 2))
    return float("inf") if mse == 0.0 else float(10.0 * np.log10(255.0**2 / mse))


def ssim_y(ref: np.ndarray, out: np.ndarray, crop: int = 0) -> float:
    """SSIM of the BT.601 luma (11x11 Gaussian window, sigma 1.5).

    Args:
        ref (np.ndarray): (H, W, 3) uint8 RGB, the reference frame.
        out (np.ndarray): (H, W, 3) uint8 RGB, the frame scored, same shape.
        crop (int, optional): pixels dropped at every border first (the scale factor K).

    Returns:
        float: SSIM-Y in [-1, 1].

    Raises:
        ValueError: the shapes differ, or fewer than 11x11 pixels remain after the crop.
    """
    ref_y, out_y = _cropped_pair(ref, out, crop)
    if min(ref_y.shape) < 11:
        raise ValueError(f"SSIM needs at least 11x11 pixels after the border crop, got {ref_y.shape}")
    return float(structural_similarity(ref_y, out_y, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False, data_range=255.0))


def reference_flow(ref_prev: np.ndarray, ref_cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Backward DIS flow between two reference frames.

    Args:
        ref_prev (np.ndarray): (H, W, 3) uint8 RGB, the previous reference frame.
        ref_cur (np.ndarray): (H, W, 3) uint8 RGB, the current reference frame.

    Returns:
        tuple[np.ndarray, np.ndarray]: backward (H, W, 2) float32 in pixels, current -> previous (x, y); valid
        (H, W) bool, True where the forward-backward check passes and the source pixel is inside the frame.
    """
    return pair_flows(ref_prev, ref_cur)[0]


def warp_error(ref_prev: np.ndarray, ref_cur: np.ndarray, out_prev: np.ndarray, out_cur: np.ndarray) -> float:
    """Mean |out_cur - warp(out_prev)| over non-occluded pixels, in [0, 255] RGB units.

    The flow comes from the reference pair, so a method is not rewarded for motion it invents.

    Args:
        ref_prev (np.ndarray): (H, W, 3) uint8 RGB, the previous reference frame.
        ref_cur (np.ndarray): (H, W, 3) uint8 RGB, the current reference frame.
        out_prev (np.ndarray): (H, W, 3) uint8 RGB, the previous output frame.
        out_cur (np.ndarray): (H, W, 3) uint8 RGB, the current output frame.

    Returns:
        float: the warp error in [0, 255]; nan if no pixel is valid (a scene cut, say).

    Raises:
        ValueError: the four frames do not have one shape.
    """
    if not ref_prev.shape == ref_cur.shape == out_prev.shape == out_cur.shape:
        raise ValueError("warp_error needs four frames of one shape")
    return warp_error_along(reference_flow(ref_prev, ref_cur), out_prev, out_cur)


def warp_error_along(flow: tuple[np.ndarray, np.ndarray], out_prev: np.ndarray, out_cur: np.ndarray) -> float:
    """warp_error with the (backward, valid) pair of `reference_flow` computed once and reused.

    Args:
        flow (tuple[np.ndarray, np.ndarray]): backward (H, W, 2) float32 and valid (H, W) bool, from
            `reference_flow`.
        out_prev (np.ndarray): (H, W, 3) uint8 RGB, the previous output frame.
        out_cur (np.ndarray): (H, W, 3) uint8 RGB, the current output frame.

    Returns:
        float: the warp error in [0, 255]; nan if no pixel is valid.
    """
    backward, valid = flow
    if not valid.any():
        return float("nan")
    warped = warp(out_prev.astype(np.float32), backward)
    diff = np.abs(out_cur.astype(np.float32) - warped).mean(axis=-1)
    return float(diff[valid].mean())

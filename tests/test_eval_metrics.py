"""PSNR-Y / SSIM-Y against hand-computed values, and warp error on static, flickering and moving videos."""

from __future__ import annotations

import math

import numpy as np
import pytest

from patchvsr.eval.metrics import psnr_y, reference_flow, rgb_to_y, ssim_y, warp_error

C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def _flat(value: int, h: int = 16, w: int = 16) -> np.ndarray:
    return np.full((h, w, 3), value, dtype=np.uint8)


def _texture(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """Smooth random texture (H, W, 3) uint8: DIS needs structure to track."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (h // 4 + 2, w // 4 + 2, 3))
    big = np.kron(small, np.ones((4, 4, 1)))
    box = np.ones(5) / 5
    for axis in (0, 1):
        big = np.apply_along_axis(lambda v: np.convolve(v, box, mode="same"), axis, big)
    return np.clip(big[4:4 + h, 4:4 + w], 0, 255).astype(np.uint8)


def test_luma_is_bt601_studio_swing():
    assert rgb_to_y(_flat(0))[0, 0] == pytest.approx(16.0)
    assert rgb_to_y(_flat(255))[0, 0] == pytest.approx(235.0)
    red = np.zeros((1, 1, 3), np.uint8)
    red[..., 0] = 255
    assert rgb_to_y(red)[0, 0] == pytest.approx(16 + 65.481)


def test_psnr_hand_computed():
    # +10 on R, G and B moves Y by 10 * 219 / 255 everywhere: MSE = (2190 / 255)^2.
    expected = 10 * math.log10(255**2 / (2190 / 255) ** 2)
    assert psnr_y(_flat(100), _flat(110)) == pytest.approx(expected)
    assert psnr_y(_flat(100), _flat(100)) == math.inf


def test_psnr_border_crop_ignores_the_frame_edge():
    ref, out = _flat(100), _flat(100)
    out[:2], out[:, -2:] = 255, 0  # damage only a 2-pixel border
    assert psnr_y(ref, out, crop=2) == math.inf
    # Without the crop: 60 of 256 pixels wrong, each by a hand-computable luma error.
    err_top = (255 - 100) * 219 / 255
    err_right = (0 - 100) * 219 / 255
    mse = (28 * err_top**2 + 32 * err_right**2) / 256  # the corner belongs to the later write
    assert psnr_y(ref, out) == pytest.approx(10 * math.log10(255**2 / mse))


def test_ssim_of_flat_images_is_the_luminance_term():
    a, b = _flat(100), _flat(140)
    ya, yb = rgb_to_y(a)[0, 0], rgb_to_y(b)[0, 0]
    expected = (2 * ya * yb + C1) / (ya**2 + yb**2 + C1)  # variances are 0: the structure term is C2/C2
    assert ssim_y(a, b) == pytest.approx(expected, rel=1e-9)
    assert ssim_y(a, a) == pytest.approx(1.0)


def _gaussian_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al. 2004 by the definition: 11x11 Gaussian (sigma 1.5) at every valid position, then mean."""
    g = np.exp(-(np.arange(-5, 6) ** 2) / (2 * 1.5**2))
    win = np.outer(g, g) / np.outer(g, g).sum()
    values = []
    for i in range(x.shape[0] - 10):
        for j in range(x.shape[1] - 10):
            px, py = x[i:i + 11, j:j + 11], y[i:i + 11, j:j + 11]
            mx, my = (win * px).sum(), (win * py).sum()
            vx, vy = (win * px * px).sum() - mx**2, (win * py * py).sum() - my**2
            cxy = (win * px * py).sum() - mx * my
            values.append((2 * mx * my + C1) * (2 * cxy + C2) / ((mx**2 + my**2 + C1) * (vx + vy + C2)))
    return float(np.mean(values))


def test_ssim_matches_the_definition_on_a_textured_pair():
    ref = _texture(24, 28)
    noisy = np.clip(ref + np.random.default_rng(1).normal(0, 12, ref.shape), 0, 255).astype(np.uint8)
    expected = _gaussian_ssim(rgb_to_y(ref)[2:-2, 2:-2], rgb_to_y(noisy)[2:-2, 2:-2])
    assert ssim_y(ref, noisy, crop=2) == pytest.approx(expected, abs=1e-6)
    assert 0.3 < expected < 0.95


def test_shape_and_crop_errors():
    with pytest.raises(ValueError, match="shapes differ"):
        psnr_y(_flat(1), _flat(1, 8, 8))
    with pytest.raises(ValueError, match="leaves nothing"):
        psnr_y(_flat(1), _flat(1), crop=8)
    with pytest.raises(ValueError, match="11x11"):
        ssim_y(_flat(1, 12, 12), _flat(1, 12, 12), crop=1)


def test_warp_error_is_zero_for_a_static_video():
    frame = _texture()
    assert warp_error(frame, frame, frame, frame) == 0.0


def test_warp_error_grows_with_flicker():
    frame = _texture()
    errors = []
    for amplitude in (0, 4, 8, 16):
        flicker = np.clip(frame.astype(int) + amplitude, 0, 255).astype(np.uint8)
        errors.append(warp_error(frame, frame, frame, flicker))
    assert errors[0] == 0.0
    assert all(a < b for a, b in zip(errors, errors[1:]))
    assert errors[2] == pytest.approx(8, abs=0.5)  # +8 on every channel, few clipped pixels


def test_warp_error_follows_motion_of_the_reference():
    big = _texture(64, 96, seed=3)
    prev, cur = big[8:56, 8:72], big[8:56, 11:75]  # content moves 3 px to the left
    flow, valid = reference_flow(prev, cur)
    assert np.median(flow[..., 0][valid]) == pytest.approx(3, abs=0.3)
    assert valid.mean() > 0.8
    # An output that follows the motion is consistent; one that stays still is not.
    assert warp_error(prev, cur, prev, cur) < 2.0
    assert warp_error(prev, cur, prev, prev) > 3 * warp_error(prev, cur, prev, cur)

"""NIQE against an independent, step-by-step re-derivation of scikit-video's `niqe` (its source, followed
line by line with loops over patches, float32 MSCN via scipy's correlate1d, and `np.cov`/`scipy.linalg.pinv`),
since scikit-video itself cannot be imported on numpy 2."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import scipy.ndimage
import scipy.special
from PIL import Image

from patchvsr.eval.niqe import natural_scene_model, niqe, niqe_supported

GAMMAS = np.arange(0.2, 10, 0.001)
PREC = scipy.special.gamma(2.0 / GAMMAS) ** 2 / (scipy.special.gamma(1.0 / GAMMAS) * scipy.special.gamma(3.0 / GAMMAS))


def _window(lw: int, sigma: float) -> list[float]:
    weights = [math.exp(-0.5 * i * i / (sigma * sigma)) for i in range(-lw, lw + 1)]
    return [v / sum(weights) for v in weights]


def _mscn(image: np.ndarray) -> np.ndarray:
    window = _window(3, 7.0 / 6.0)
    image = image.astype(np.float32)
    mu = np.zeros_like(image)
    var = np.zeros_like(image)
    scipy.ndimage.correlate1d(image, window, 0, mu, mode="constant")
    scipy.ndimage.correlate1d(mu, window, 1, mu, mode="constant")
    scipy.ndimage.correlate1d(image**2, window, 0, var, mode="constant")
    scipy.ndimage.correlate1d(var, window, 1, var, mode="constant")
    return ((image - mu) / (np.sqrt(np.abs(var - mu**2)) + 1)).astype(np.float32)


def _aggd(data: np.ndarray) -> tuple[float, float, float, float]:
    data = data.ravel().astype(np.float64)
    left = np.sqrt(np.average(data[data < 0] ** 2))
    right = np.sqrt(np.average(data[data >= 0] ** 2))
    gamma_hat = left / right
    r_hat = np.average(np.abs(data)) ** 2 / np.average(data**2)
    rhat_norm = r_hat * ((gamma_hat**3 + 1) * (gamma_hat + 1)) / (gamma_hat**2 + 1) ** 2
    alpha = GAMMAS[np.argmin((PREC - rhat_norm) ** 2)]
    g1, g2, g3 = (scipy.special.gamma(k / alpha) for k in (1.0, 2.0, 3.0))
    bl, br = np.sqrt(g1) / np.sqrt(g3) * left, np.sqrt(g1) / np.sqrt(g3) * right
    return alpha, (br - bl) * (g2 / g1), bl, br


def _subband(patch: np.ndarray) -> list[float]:
    alpha_m, _, bl, br = _aggd(patch)
    products = [np.roll(patch, 1, axis=1) * patch, np.roll(patch, 1, axis=0) * patch,
                np.roll(np.roll(patch, 1, axis=0), 1, axis=1) * patch,
                np.roll(np.roll(patch, 1, axis=0), -1, axis=1) * patch]
    feats = [alpha_m, (bl + br) / 2.0]
    for k, product in enumerate(products):
        a, n, l, r = _aggd(product)
        feats += [a, n, l, r if k < 2 else l]  # skvideo: (alpha3, N3, bl3, bl3), (alpha4, N4, bl4, bl4)
    return feats


def _on_patches(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape
    return np.array([_subband(img[j:j + size, i:i + size])
                     for j in range(0, h - size + 1, size) for i in range(0, w - size + 1, size)])


def skvideo_niqe(luma: np.ndarray) -> float:
    h, w = luma.shape
    img = luma[: h - h % 96, : w - w % 96].astype(np.float32)
    img2 = np.asarray(Image.fromarray(img, mode="F").resize((img.shape[1] // 2, img.shape[0] // 2),
                                                            Image.BICUBIC))
    feats = np.hstack((_on_patches(_mscn(img), 96), _on_patches(_mscn(img2), 48)))
    pop_mu, pop_cov = natural_scene_model()
    x = feats.mean(axis=0) - pop_mu
    return float(np.sqrt(x @ scipy.linalg.pinv((pop_cov + np.cov(feats.T)) / 2.0) @ x))


def _test_image(h: int = 200, w: int = 296) -> np.ndarray:
    """A fixed natural-ish image: smooth gradients, edges and mild noise, in [0, 255]."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = 110 + 60 * np.sin(x / 9.0) * np.cos(y / 13.0) + 40 * ((x + y) % 64 < 32) + rng.normal(0, 6, (h, w))
    return np.clip(img, 0, 255)


def test_model_has_the_expected_shapes():
    mu, cov = natural_scene_model()
    assert mu.shape == (36,) and cov.shape == (36, 36)
    np.testing.assert_allclose(cov, cov.T)


def test_niqe_matches_skvideo_algorithm():
    img = _test_image()
    expected = skvideo_niqe(img)
    assert niqe(img) == pytest.approx(expected, rel=1e-3)
    assert 0 < expected < 100


def test_blur_makes_niqe_worse():
    img = _test_image()
    blurred = scipy.ndimage.gaussian_filter(img, 2.5)
    assert niqe(blurred) > niqe(img) + 1


def test_size_bounds():
    assert niqe_supported(194, 194) and not niqe_supported(193, 400) and not niqe_supported(144, 176)
    with pytest.raises(ValueError, match="193x193"):
        niqe(np.zeros((144, 176)))

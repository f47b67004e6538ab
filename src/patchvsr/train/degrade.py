"""Training degradation (the paper's, plus the evaluation protocol's bicubic and an optional realistic one).

Per sample, all random choices from the sample's own torch.Generator:
1. a random run of `frames` frames and a random canvas (a sub-rectangle of the HR clip, at least one window),
   or, for stage 1 (`full_frame`), the whole clip resized to the window size; for `soft_share` of samples a
   soft source: the canvas (so the HR target too) blurred; for `grain_share` a grainy source: the canvas,
   target too, with noise (its grain is part of the picture, so it counts as clean);
2. (realistic share only) for `lr_blur_share` of those, Gaussian blur of the canvas on the way to the LR only;
3. antialiased downsampling by a random factor k in `scale_range`: bicubic for `bicubic_share` of samples
   (exactly how the evaluation makes its LR input), bilinear (the paper's) for the rest;
4. (realistic share only) sensor noise and JPEG or H.264 compression in the proportions of `mix`; with
   `lr_crf` (validation) H.264 at that CRF, libx264 medium, the way `patchvsr eval --lr-crf` writes it;
   otherwise 8-bit quantisation; the degradation strength of the result (`realistic.strength`: 0 for a clean
   downscale) is a condition;
5. bicubic upsampling back to the canvas size (`upsample_bicubic`, the upsampler inference uses);
6. a random window crop, its normalised box, the global frame G and the window's position mask M
   (through `patchvsr.tiling.guidance`, so training sees exactly what inference builds);
7. noise augmentation of the window condition at t_aug in `noise_range` (rectified-flow time, i.e. timestep
   200-300 of 1000) via `patchvsr.sampling.add_noise`, except for `clean_share` of samples (t_aug = 0),
   so that inference may condition on the clean input.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange

from patchvsr.sampling import add_noise
from patchvsr.sizes import HW
from patchvsr.tiling.guidance import crop_boxes, global_frame, position_masks
from patchvsr.tiling.plan import Window, WindowPlan
from patchvsr.train import realistic


@dataclass(frozen=True)
class DegradeConfig:
    """Degradation settings. window: side of the square window (px); frames: clip length taken."""

    window: int = 64
    frames: int = 4
    scale_range: tuple[float, float] = (2.0, 4.0)
    bicubic_share: float = 0.5
    noise_range: tuple[float, float] = (0.2, 0.3)
    clean_share: float = 0.5
    full_frame: bool = False
    global_size: int | None = None
    realistic_share: float = 0.0
    lr_blur_share: float = 0.3  # of realistic samples: LR blurred before downsampling (the HR target is not)
    soft_share: float = 0.0     # of all samples: a soft source, the canvas blurred before anything else
    grain_share: float = 0.0    # of all samples: a grainy source, noise on the canvas before anything else
    # the realistic chain's proportions (realistic.Mix, whose defaults are the first lite runs' recipe)
    lr_noise_share: float = realistic.Mix.noise_share
    jpeg_share: float = realistic.Mix.jpeg_share
    h264_share: float = realistic.Mix.h264_share
    h264_presets: tuple[str, ...] = realistic.Mix.h264_presets
    lr_crf: int | None = None   # every LR written as H.264 at this CRF (a validation split), no other degradation

    @property
    def mix(self) -> realistic.Mix:
        return realistic.Mix(self.lr_noise_share, self.jpeg_share, self.h264_share, self.h264_presets)

    def __post_init__(self) -> None:
        self.mix  # noqa: B018 - validates the realistic proportions
        if self.window < 8 or self.frames < 1:
            raise ValueError(f"window must be >= 8 and frames >= 1, got {self.window} and {self.frames}")
        low, high = self.scale_range
        if not 1.0 <= low <= high:
            raise ValueError(f"scale_range must satisfy 1 <= low <= high, got {self.scale_range}")
        low, high = self.noise_range
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"noise_range must satisfy 0 <= low <= high <= 1, got {self.noise_range}")
        if self.lr_crf is not None and not 0 <= self.lr_crf <= 51:
            raise ValueError(f"lr_crf must lie in [0, 51] (x264's range), got {self.lr_crf}")
        for name in ("bicubic_share", "clean_share", "realistic_share", "lr_blur_share", "soft_share",
                     "grain_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.global_size is not None and self.global_size < 1:
            raise ValueError(f"global_size must be >= 1, got {self.global_size}")


@dataclass(frozen=True)
class Degraded:
    """A degraded batch. B samples, window h = w = config.window, G of side gs = config.global_size or h.

    hr: (B, 3, T, h, w) in [-1, 1], the HR window (target);
    lr_up: (B, 3, T, h, w) in [-1, 1], the clean bicubic-upsampled LR window (residual base);
    cond: (B, 3, T, h, w) about [-1, 1] (plus noise), lr_up noise-augmented to noise_level (patch input);
    global_frame: (B, 3, T, gs, gs) in [-1, 1], the whole upsampled LR canvas resized (clean);
    position_mask: (B, 1, gs, gs) in {0, 1}, the window's footprint on global_frame;
    scale: (B,) >= 1, the effective factor canvas / LR (mean of both axes);
    crop_box: (B, 4) (x0, y0, x1, y1) in [0, 1] relative to the canvas; noise_level: (B,) in [0, 1];
    degradation: (B,) in [0, 1], the LR's distance from the clean downscale (`realistic.strength`).
    """

    hr: torch.Tensor
    lr_up: torch.Tensor
    cond: torch.Tensor
    global_frame: torch.Tensor
    position_mask: torch.Tensor
    scale: torch.Tensor
    crop_box: torch.Tensor
    noise_level: torch.Tensor
    degradation: torch.Tensor


def upsample_bicubic(frames: torch.Tensor, size: HW) -> torch.Tensor:
    """Bicubic upsampling (align_corners=False), clamped; identical to `patchvsr.methods.classical.Bicubic`, the
    V_up of inference.

    Args:
        frames (torch.Tensor): (N, 3, h, w) in [0, 1].
        size (HW): (H, W) of the result.

    Returns:
        torch.Tensor: (N, 3, H, W) in [0, 1], frames' dtype.
    """
    return F.interpolate(frames, size=size, mode="bicubic", align_corners=False).clamp(0.0, 1.0)


def downsample(frames: torch.Tensor, size: HW, bicubic: bool) -> torch.Tensor:
    """Antialiased downsampling, clamped.

    Args:
        frames (torch.Tensor): (N, 3, H, W) in [0, 1].
        size (HW): (h, w) of the result.
        bicubic (bool): bicubic if True, else bilinear.

    Returns:
        torch.Tensor: (N, 3, h, w) in [0, 1], frames' dtype.
    """
    mode = "bicubic" if bicubic else "bilinear"
    return F.interpolate(frames, size=size, mode=mode, antialias=True, align_corners=False).clamp(0.0, 1.0)


def quantize(frames: torch.Tensor) -> torch.Tensor:
    """Round [0, 1] values to the 256 levels of 8-bit video.

    Args:
        frames (torch.Tensor): any shape, in [0, 1].

    Returns:
        torch.Tensor: frames' shape and dtype, multiples of 1/255.
    """
    return torch.round(frames * 255.0) / 255.0


def _rand(generator: torch.Generator) -> float:
    return float(torch.rand((), generator=generator, dtype=torch.float64))


def _randint(generator: torch.Generator, low: int, high: int) -> int:
    """Uniform integer in [low, high] (inclusive)."""
    return int(torch.randint(low, high + 1, (), generator=generator))


def _canvas(clip: torch.Tensor, config: DegradeConfig, generator: torch.Generator) -> torch.Tensor:
    """clip: (3, T0, S, S) in [0, 1] -> canvas frames (T, 3, Hc, Wc): a random run of frames, then a random
    sub-rectangle of at least one window (or, full_frame, the whole clip resized to the window)."""
    total = clip.shape[1]
    if total < config.frames:
        raise ValueError(f"clips have {total} frames, fewer than the {config.frames} needed")
    start = _randint(generator, 0, total - config.frames)
    frames = rearrange(clip[:, start:start + config.frames], "c t h w -> t c h w")
    height, width = frames.shape[-2:]
    if config.full_frame:
        return downsample(frames, (config.window, config.window), bicubic=True)
    if min(height, width) < config.window:
        raise ValueError(f"clips of {width}x{height} px are smaller than the {config.window}-px window")
    canvas_h, canvas_w = (_randint(generator, config.window, n) for n in (height, width))
    y0, x0 = _randint(generator, 0, height - canvas_h), _randint(generator, 0, width - canvas_w)
    return frames[..., y0:y0 + canvas_h, x0:x0 + canvas_w]


def _low_resolution(canvas: torch.Tensor, config: DegradeConfig,
                    generator: torch.Generator) -> tuple[torch.Tensor, float, float]:
    """canvas (T, 3, H, W) in [0, 1] -> (LR (T, 3, h, w) in [0, 1] 8-bit levels, effective scale, degradation
    strength)."""
    height, width = canvas.shape[-2:]
    low, high = config.scale_range
    factor = low + (high - low) * _rand(generator)
    size = (max(1, round(height / factor)), max(1, round(width / factor)))
    bicubic = _rand(generator) < config.bicubic_share
    strength = 0.0
    if config.lr_crf is not None:
        clean = quantize(downsample(canvas, size, bicubic))
        lr = realistic.h264(clean, config.lr_crf, preset="medium")
        strength = realistic.strength(lr, clean)
    elif _rand(generator) < config.realistic_share:
        small = downsample(realistic.blur(canvas, factor, config.lr_blur_share, generator), size, bicubic)
        lr = realistic.corrupt(small, generator, config.mix)
        strength = realistic.strength(lr, quantize(small))   # noise and compression; blur is not visible as such
    else:
        lr = quantize(downsample(canvas, size, bicubic))
    return lr, (height / size[0] + width / size[1]) / 2.0, strength


def _window_and_guidance(canvas_hw: HW, config: DegradeConfig,
                         generator: torch.Generator) -> tuple[tuple[int, int], torch.Tensor, torch.Tensor]:
    """Random window position on the canvas -> ((y0, x0), crop box (4,), position mask (1, gs, gs))."""
    height, width = canvas_hw
    y0, x0 = _randint(generator, 0, height - config.window), _randint(generator, 0, width - config.window)
    plan = WindowPlan(canvas=canvas_hw, window=(config.window, config.window), fusion="none",
                      windows=(Window(index=0, kind="primary", group=0, y0=y0, x0=x0),))
    side = config.global_size or config.window
    return (y0, x0), crop_boxes(plan, [0])[0], position_masks(plan, [0], (side, side))[0]


def _to_model(frames: torch.Tensor) -> torch.Tensor:
    """(T, 3, H, W) in [0, 1] -> (3, T, H, W) in [-1, 1], the model's input space."""
    return rearrange(frames, "t c h w -> c t h w") * 2.0 - 1.0


def degrade_clip(clip: torch.Tensor, config: DegradeConfig, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """One sample (module docstring).

    Args:
        clip (torch.Tensor): (3, T0, S, S) float in [0, 1] on the CPU, T0 >= frames, S >= window.
        config (DegradeConfig): the degradation settings.
        generator (torch.Generator): the sample's own CPU generator.

    Returns:
        dict[str, torch.Tensor]: the fields of `Degraded` without the batch axis: hr, lr_up (3, T, h, w) in
        [-1, 1]; cond (3, T, h, w) (lr_up plus its noise augmentation); global_frame (3, T, gs, gs) in [-1, 1];
        position_mask (1, gs, gs) in {0, 1}; crop_box (4,); scale, noise_level, degradation () float32.

    Raises:
        ValueError: if the clip has fewer frames than `config.frames` or is smaller than the window.
    """
    canvas = _canvas(clip, config, generator)                                  # (T, 3, H, W)
    if config.soft_share and _rand(generator) < config.soft_share:  # no draw at 0: older runs' streams stay
        canvas = realistic.soften(canvas, generator)
    if config.grain_share and _rand(generator) < config.grain_share:  # no draw at 0 either
        canvas = realistic.grain(canvas, generator)
    lr, scale, strength = _low_resolution(canvas, config, generator)           # (T, 3, h, w)
    lr_up = upsample_bicubic(lr, tuple(canvas.shape[-2:]))                     # (T, 3, H, W)
    (y0, x0), box, mask = _window_and_guidance(tuple(canvas.shape[-2:]), config, generator)
    side = config.global_size or config.window
    window = (slice(None), slice(None), slice(y0, y0 + config.window), slice(x0, x0 + config.window))
    lr_window = _to_model(lr_up[window])
    clean = _rand(generator) < config.clean_share
    low, high = config.noise_range
    level = 0.0 if clean else low + (high - low) * _rand(generator)
    noise = torch.randn(lr_window.shape, generator=generator)
    return {
        "hr": _to_model(canvas[window]), "lr_up": lr_window,
        "cond": add_noise(lr_window, noise, level),
        "global_frame": global_frame(_to_model(lr_up), (side, side)), "position_mask": mask,
        "scale": torch.tensor(scale, dtype=torch.float32), "crop_box": box,
        "noise_level": torch.tensor(level, dtype=torch.float32),
        "degradation": torch.tensor(strength, dtype=torch.float32),
    }


def degrade(clips: torch.Tensor, config: DegradeConfig, generators: list[torch.Generator]) -> Degraded:
    """Degrade a batch of clips.

    Args:
        clips (torch.Tensor): (B, 3, T0, S, S) float in [0, 1] on the CPU.
        config (DegradeConfig): the degradation settings.
        generators (list[torch.Generator]): one per sample, seeded from the sample's identity, so a sample does
            not depend on the batch it is in.

    Returns:
        Degraded: the batch, on the CPU.

    Raises:
        ValueError: if the generators do not match the clips one to one, or for a clip `degrade_clip` refuses.
    """
    if len(generators) != clips.shape[0]:
        raise ValueError(f"need one generator per clip: {clips.shape[0]} clips, {len(generators)} generators")
    samples = [degrade_clip(clip, config, generator) for clip, generator in zip(clips, generators)]
    return Degraded(**{name: torch.stack([s[name] for s in samples]) for name in samples[0]})

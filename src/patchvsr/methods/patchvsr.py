"""The PatchVSR upscaler: a trained `PatchVSRModel` driven window by window by the tiling engine.

Per clip (see the data flow in docs/design.md):
1. V_up = bicubic(LR clip) on the output canvas, G = V_up resized to the window (global guidance);
2. a window plan for the canvas (primary + auxiliary windows, or the `shifted`/`none` variants);
3. a rectified-flow Euler loop on the scaled residual z0 = (HR - V_up) / residual_std, whose velocity at every
   step is the fusion of all windows' velocities (`FusedVelocity`), the per-window branch features cached;
   clips longer than the model's native length run as consecutive segments of that length;
4. HR = V_up + residual_std * z0_hat, the detail filtered over the whole clip (`patchvsr.stabilize`), in [0, 1].

Fidelity mode (`steps=1`, the default): one Euler step from z = 0 at t = 1, the model's MMSE estimate.
Detail mode (`steps > 1`): from Gaussian noise at t = 1 (or the noised V_up at `t0 < 1`), seeded per clip.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from patchvsr import consistency, stabilize
from patchvsr.consistency import back_project, weight_for
from patchvsr.devices import compute_dtype
from patchvsr.errors import InputError, OptionError
from patchvsr.memory import reuse_freed_memory
from patchvsr.models import PatchVSRModel, WindowConditions
from patchvsr.sampling import clip_generator, flow_timesteps, initial_latent, sample_euler
from patchvsr.sizes import HW
from patchvsr.tiling import FUSION_MODES, FusedVelocity, WindowBatch, WindowPlan, global_frame, make_plan
from patchvsr.tiling.temporal import count_clips

log = logging.getLogger("patchvsr")

SHIPPED = Path(__file__).resolve().parent.parent / "weights"
FUSION_CHOICES = ("auto", *FUSION_MODES)
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# Frames per clip without --clip-frames (rounded up to a multiple of the model's native clip length): the
# temporal filter's reach. The model itself runs on segments of its native length (the tiny model: 4 frames,
# as trained), which was faster and better than attending over all 16 at once (docs/RESULTS.md).
DEFAULT_CLIP_FRAMES = 16
# Windows per model call when --batch is not given. A GPU needs large calls: small ones are launch-bound
# (docs/RESULTS.md, "CUDA").
DEFAULT_BATCH = {"cpu": 16, "cuda": 256}


@dataclass(frozen=True)
class SamplerOptions:
    """Inference options (None in the CLI means these defaults).

    steps: Euler steps (1 = fidelity mode); fusion: "auto" or one of FUSION_MODES (see `fusion_mode`);
    seed: base seed, per-clip generators derive from (seed, clip index); window: window side in output pixels
    (default: the model's native size; a multiple of its token patch); clip_frames: frames per clip
    (default: DEFAULT_CLIP_FRAMES rounded up to a multiple of the model's native length);
    batch: windows per model call (default: the device's DEFAULT_BATCH, see `batch_size`); t0: start time in
    (0, 1] (t0 < 1 starts from the noised V_up);
    dtype: compute dtype of the network: "auto" (bf16 autocast where the device runs bf16 natively, else
    fp32; `patchvsr.devices.compute_dtype`), "fp32", "bf16" or "fp16";
    temporal_radius: average the added detail over this many motion-compensated neighbours on each side
    within the clip (`patchvsr.stabilize`; 0 = off);
    degradation: for models conditioned on the input's degradation strength, "auto" (estimated once per
    segment of the clip from its whole canvas, the same for every window: per-window estimates scatter and
    cost 0.1-0.15 dB, docs/lite_model_notes.md) or a strength in [0, 1] as a string or number (0: a clean
    downscale; about 0.7: H.264 CRF 30); other models ignore it.
    consistency: weight in [0, 1] of the back-projection onto the input (`patchvsr.consistency`), or "auto":
    full for clean input, fading to 0 with the degradation strength (given, or estimated for the clip by
    models that have an estimator; 0 for the others).
    """

    steps: int = 1
    fusion: str = "auto"
    seed: int = 0
    window: int | None = None
    clip_frames: int | None = None
    batch: int | None = None
    t0: float = 1.0
    dtype: str = "auto"
    temporal_radius: int = 8
    degradation: str | float = "auto"
    consistency: str | float = "auto"

    def __post_init__(self) -> None:
        self.degradation_strength  # noqa: B018 - validates the value (OptionError)
        self.consistency_weight(None)  # noqa: B018 - validates the value (OptionError)
        if not isinstance(self.steps, int) or not 1 <= self.steps <= 1000:
            raise OptionError(f"--steps must be an integer in [1, 1000], got {self.steps!r}")
        if self.fusion not in FUSION_CHOICES:
            raise OptionError(f"--fusion must be one of {', '.join(FUSION_CHOICES)}, got {self.fusion!r}")
        for flag, value in (("--window", self.window), ("--clip-frames", self.clip_frames)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise OptionError(f"{flag} must be an integer >= 1, got {value!r}")
        if self.batch is not None and (not isinstance(self.batch, int) or self.batch < 1):
            raise OptionError(f"--batch must be an integer >= 1, got {self.batch!r}")
        if not 0.0 < self.t0 <= 1.0:
            raise OptionError(f"--t0 must be in (0, 1], got {self.t0!r}")
        if not isinstance(self.temporal_radius, int) or self.temporal_radius < 0:
            raise OptionError(f"--temporal-radius must be an integer >= 0, got {self.temporal_radius!r}")
        if self.dtype != "auto" and self.dtype not in DTYPES:
            raise OptionError(f"--dtype must be one of auto, {', '.join(DTYPES)}, got {self.dtype!r}")

    @property
    def degradation_strength(self) -> float | None:
        """The strength to condition on, or None to estimate it per window ("auto")."""
        return _auto_or_unit(self.degradation, "--degradation")

    def consistency_weight(self, strength: float | None) -> float:
        """The back-projection weight for an input of degradation `strength` (see `consistency`).

        Args:
            strength (float, optional): the input's degradation strength in [0, 1]; None: unknown (clean).

        Returns:
            float: the weight in [0, 1]: `consistency` if it is a number, else `weight_for(strength)`.
        """
        weight = _auto_or_unit(self.consistency, "--consistency")
        return weight_for(strength) if weight is None else weight

    @property
    def fusion_mode(self) -> str:
        """The fusion used: `fusion`, or for "auto" `band` in the one-step fidelity mode (its output does not
        depend on noise, so the two sides of a seam agree up to their context and a narrow blend hides the
        difference) and the paper's `weighted` joint modulation with more steps (windows sampled from noise
        meet at every seam with different samples, which the 50 % overlapping windows reconcile)."""
        if self.fusion != "auto":
            return self.fusion
        return "band" if self.steps == 1 else "weighted"

    def timesteps(self) -> torch.Tensor:
        """The sampler's time grid from t0 down to 0 (steps + 1 values).

        Returns:
            torch.Tensor: (steps + 1,) float64, strictly decreasing from t0 to 0.
        """
        return flow_timesteps(self.steps, self.t0)


def _auto_or_unit(value: str | float, flag: str) -> float | None:
    """None for "auto", else `value` as a number in [0, 1] (OptionError naming `flag` otherwise)."""
    if value == "auto":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not 0.0 <= number <= 1.0:
        raise OptionError(f"{flag} must be auto or a number in [0, 1], got {value!r}")
    return number


def start_latent(options: SamplerOptions, like: torch.Tensor, clip_index: int,
                 clean: torch.Tensor | None = None) -> torch.Tensor:
    """z at the sampler's first time, shaped and placed like `like`: 0 in the fidelity mode (one step from
    t = 1); else noise at t0 = 1, or `clean` (default: zeros, the zero residual) noised to t0 < 1, from the
    clip's own generator.

    Args:
        options (SamplerOptions): steps, t0 and seed.
        like (torch.Tensor): a latent of the clip, e.g. (3, T, H, W) pixels or (C, t, h, w) VAE latents.
        clip_index (int): index of the clip in the video (>= 0); the noise is drawn from (seed, clip_index).
        clean (torch.Tensor, optional): the latent to noise for t0 < 1, shaped like `like`; None: zeros.

    Returns:
        torch.Tensor: `like`'s shape on `like`'s device; zeros in `like`'s dtype, pure noise float32.
    """
    if options.steps == 1 and options.t0 == 1.0:
        return torch.zeros_like(like)
    generator = clip_generator(options.seed, clip_index, "cpu")
    reference = None
    if options.t0 < 1.0:
        reference = torch.zeros_like(like, device="cpu") if clean is None else clean.cpu()
    return initial_latent(tuple(like.shape), generator, options.t0, reference).to(like.device)


def batch_size(options: SamplerOptions, device: torch.device) -> int:
    """Windows per model call: --batch, else the device's DEFAULT_BATCH.

    Args:
        options (SamplerOptions): its `batch` (None: the device's default).
        device (torch.device): the device the model runs on.

    Returns:
        int: windows per call, >= 1.
    """
    return options.batch or DEFAULT_BATCH.get(device.type, DEFAULT_BATCH["cpu"])


def sampler_stats(plan: WindowPlan | None, options: SamplerOptions, dtype: tuple[str, str]) -> dict:
    """The `describe()` fields of a windowed diffusion upscaler: windows of its last clip (None before the
    first), steps, fusion mode, temporal radius, and the compute dtype with the reason it was chosen.

    Args:
        plan (WindowPlan, optional): the plan of the last clip; None before the first clip.
        options (SamplerOptions): the sampler options.
        dtype (tuple[str, str]): (dtype name, reason), as `patchvsr.devices.compute_dtype` returns.

    Returns:
        dict: windows_per_clip, steps, fusion, temporal_radius, dtype, dtype_reason.
    """
    return {"windows_per_clip": None if plan is None else plan.windows_per_step,
            "steps": options.steps, "fusion": options.fusion_mode, "temporal_radius": options.temporal_radius,
            "dtype": dtype[0], "dtype_reason": dtype[1]}


def bicubic_canvas(clip: torch.Tensor, size: HW) -> tuple[torch.Tensor, float]:
    """V_up and the scale condition, as training's degradation makes them.

    Args:
        clip (torch.Tensor): (T, 3, H, W) float in [0, 1], on any device.
        size (HW): (out_h, out_w) of the output canvas.

    Returns:
        tuple[torch.Tensor, float]: V_up (3, T, out_h, out_w) in [-1, 1], `clip`'s dtype and device; the scale,
        the mean of both axes' factors out_h / H and out_w / W.
    """
    up = F.interpolate(clip, size=size, mode="bicubic", align_corners=False).clamp_(0, 1)
    scale = (size[0] / clip.shape[-2] + size[1] / clip.shape[-1]) / 2.0
    return rearrange(up, "t c h w -> c t h w") * 2.0 - 1.0, scale


class PatchVSRUpscaler:
    """`Upscaler` (see `patchvsr.methods.base`) for a trained PatchVSR model; reports progress by windows."""

    reports_progress = True

    def __init__(self, model: PatchVSRModel, residual_std: float, options: SamplerOptions,
                 device: torch.device, name: str = "tiny"):
        patch_t, patch = model.token_patch
        window = options.window or model.window_size
        frames = options.clip_frames or -(-DEFAULT_CLIP_FRAMES // model.clip_frames) * model.clip_frames
        if window % patch:
            raise OptionError(f"--window must be a multiple of the model's token patch {patch}, got {window}")
        if frames % patch_t:
            raise OptionError(f"--clip-frames must be a multiple of {patch_t}, got {frames}")
        self.model = model.to(device).eval()
        self.model.merge_lora()
        self.residual_std, self.options, self.device, self.name = residual_std, options, device, name
        self.dtype = compute_dtype(options.dtype, device)  # (name, reason)
        if self.dtype[0] != "fp32":
            cast_matmul_weights(self.model, DTYPES[self.dtype[0]])
        if device.type == "cpu":
            reuse_freed_memory()
        self.window, self.clip_frames = window, frames
        self.segment_frames = min(frames, model.clip_frames)  # frames per model run inside a clip
        self.clip_overlap = frames // 4  # cross-faded by the clip loop: no temporal jump between clips
        self._last_plan: WindowPlan | None = None
        self._previous = SegmentReuse()

    def window_plan(self, size: HW) -> WindowPlan:
        """The window plan used for an output canvas of `size`.

        Args:
            size (HW): (out_h, out_w) of the output canvas.

        Returns:
            WindowPlan: windows of `window` output pixels a side, in the options' fusion mode.
        """
        return make_plan(tuple(size), (self.window, self.window), self.options.fusion_mode)

    def describe(self) -> dict:
        """Stats fields of the method (see `Upscaler.describe` and `sampler_stats`).

        Returns:
            dict: windows_per_clip (of the last clip, None before the first), steps, fusion, temporal_radius,
            dtype, dtype_reason.
        """
        return sampler_stats(self._last_plan, self.options, self.dtype)

    def forget_previous_clip(self) -> None:
        """Drop the segments kept for the next clip (a benchmark that repeats one clip times it afresh)."""
        self._previous.keep([])

    def window_evaluations(self, plan: WindowPlan, frames: int) -> float:
        """Windows the model evaluates for a clip of `frames` frames: segments x steps x windows per step.

        Args:
            plan (WindowPlan): the clip's window plan.
            frames (int): frames the model runs on (segments of `segment_frames`, the last one rounded up).

        Returns:
            float: window evaluations (windows per step may be fractional for alternating grids).
        """
        return -(-frames // self.segment_frames) * self.options.steps * plan.windows_per_step

    @torch.no_grad()
    def estimate_seconds(self, size: HW, frames: int, input_size: HW) -> float:
        """Seconds for `frames` frames upscaled from `input_size` to `size` on this machine: the model and the
        filters after it.

        The model: one call on a batch of blank windows is timed (after a warm-up call) and scaled to the window
        evaluations of the run. The back-projection and the temporal filter: timed on one frame and one flow
        pair of the output size (`consistency.estimate_seconds`, `stabilize.estimate_seconds`), counted per
        clip; back-projection counted as on (clean input). Decoding and encoding are not included.

        Args:
            size (HW): (out_h, out_w) of the output frames.
            frames (int): frames of the whole video.
            input_size (HW): (h, w) of the input frames.

        Returns:
            float: estimated seconds (>= 0).
        """
        plan = self.window_plan(size)
        n = max(1, min(batch_size(self.options, self.device), round(plan.windows_per_step)))
        probe = make_plan((self.window, self.window * n), (self.window, self.window), "none")  # n windows
        up = torch.zeros(3, self.segment_frames, self.window, self.window * n, device=self.device)
        guide = global_frame(up, (self.window, self.window))
        fused = FusedVelocity(probe, self._denoiser(probe, up, guide, strength=0.0), n)  # any strength costs the same
        fused(up, 1.0)  # warm-up: first-call costs the run pays once
        self.model.cache.clear()
        started = time.perf_counter()
        fused(up, 1.0)
        seconds_per_window = (time.perf_counter() - started) / n
        self.model.cache.clear()
        clips, clip_frames = count_clips(frames, self.clip_frames, self.clip_overlap), min(frames, self.clip_frames)
        projected = clip_frames if self.options.consistency_weight(None) > 0 else 0
        filters = (consistency.estimate_seconds(size, input_size, projected)
                   + stabilize.estimate_seconds(size, clip_frames, self.options.temporal_radius))
        return self.video_window_evaluations(plan, frames) * seconds_per_window + clips * filters

    @property
    def reuses_segments(self) -> bool:
        """True when a segment's output depends only on its frames (the one-step fidelity mode draws no noise)
        and consecutive clips share whole segments, so the next clip takes them from the previous one."""
        deterministic = self.options.steps == 1 and self.options.t0 == 1.0
        return deterministic and (self.clip_frames - self.clip_overlap) % self.segment_frames == 0

    def video_window_evaluations(self, plan: WindowPlan, frames: int) -> float:
        """Windows the model evaluates for a whole video of `frames` frames, clip by clip.

        Args:
            plan (WindowPlan): the window plan of the output canvas.
            frames (int): frames of the video.

        Returns:
            float: window evaluations, without the segments consecutive clips share (see `reuses_segments`).
        """
        clips = count_clips(frames, self.clip_frames, self.clip_overlap)
        shared = max(clips - 1, 0) * self.clip_overlap if self.reuses_segments else 0
        return self.window_evaluations(plan, clips * self.clip_frames - shared)

    @torch.no_grad()
    def upscale_clip(self, clip: torch.Tensor, size: HW, clip_index: int,
                     progress: Callable[[float], None] | None = None) -> torch.Tensor:
        """Upscale one clip: V_up plus the sampled residual, segment by segment (see the module docstring).

        Args:
            clip (torch.Tensor): (T, 3, H, W) float32 in [0, 1], the LR frames.
            size (HW): (out_h, out_w) of the output frames.
            clip_index (int): index of the clip in the video (>= 0); seeds the noise of the detail mode.
            progress (Callable[[float], None], optional): told the fraction in [0, 1] of the clip's window
                evaluations done, after each model call.

        Returns:
            torch.Tensor: (T, 3, out_h, out_w) float32 in [0, 1] on the CPU.
        """
        up, scale = bicubic_canvas(clip.to(self.device), size)                    # (3, T, oh, ow) in [-1, 1]
        plan = self._last_plan = self.window_plan(size)
        start = start_latent(self.options, up, clip_index)     # residual space: t0 < 1 starts from V_up itself
        batch, timesteps = batch_size(self.options, self.device), self.options.timesteps()
        parts = [slice(first, first + self.segment_frames) for first in range(0, up.shape[1], self.segment_frames)]
        found = {k: self._previous.find(clip[part], size) for k, part in enumerate(parts) if self.reuses_segments}
        reused = {k: z0 for k, z0 in found.items() if z0 is not None}  # segments the previous clip computed
        counter = WindowCounter(self.window_evaluations(plan, up.shape[1] - len(reused) * self.segment_frames),
                                progress)
        strength_of = self._strengths(up, scale)
        z0_hat = torch.empty_like(up)
        for k, part in enumerate(parts):
            if k in reused:
                z0_hat[:, part] = reused[k]
                continue
            guide = global_frame(up[:, part], (self.window, self.window))           # (3, t, h, w)
            strength = strength_of([part])
            self.model.cache.clear()
            fused = FusedVelocity(plan, self._denoiser(plan, up[:, part], guide, strength, counter), batch, scale)
            z0_hat[:, part] = sample_euler(fused, start[:, part], timesteps)
        self.model.cache.clear()
        if self.reuses_segments:  # the segments the next clip starts with
            self._previous.keep([(clip[part], size, z0_hat[:, part]) for part in parts
                                 if part.start >= up.shape[1] - self.clip_overlap])
        return self._output(up, z0_hat, clip, strength_of(parts))

    def _output(self, up: torch.Tensor, z0_hat: torch.Tensor, clip: torch.Tensor,
                strength: float | None) -> torch.Tensor:
        """The clip's final frames: V_up plus the detail `residual_std · z0_hat`, back-projected onto the input
        `clip` frame by frame (`patchvsr.consistency`), then the detail filtered over time
        (`patchvsr.stabilize.compose`; filtering after the back-projection keeps its flicker out).
        up, z0_hat: (3, T, H, W); strength: the clip's degradation strength. Returns (T, 3, H, W) float32 in
        [0, 1] on the CPU."""
        weight = self.options.consistency_weight(strength)
        up = rearrange(up, "c t h w -> t c h w").float()
        detail = self.residual_std * rearrange(z0_hat, "c t h w -> t c h w").float()
        if weight > 0:
            frames = back_project(((up + detail + 1.0) / 2.0).clamp(0, 1), clip, weight)
            detail = frames * 2.0 - 1.0 - up
        return stabilize.compose(up, detail, self.options.temporal_radius)

    def _strengths(self, up: torch.Tensor, scale: float) -> Callable[[list[slice]], float | None]:
        """The degradation strength of some segments of the canvas `up` (3, T, H, W) in [-1, 1], as a function
        of their frame slices: the given one, else the estimator's on those frames (None for models without
        one). The estimator's energy maps are computed once per segment, when first asked for, and joined for
        the whole clip (the maps are per frame, so this is exact)."""
        strength, estimator = self.options.degradation_strength, self.model.embedder.estimator
        if strength is not None or estimator is None:
            return lambda parts: strength
        maps: dict[int, list[torch.Tensor]] = {}  # by the segment's first frame
        scale_t = torch.tensor([scale], device=up.device)

        @torch.no_grad()
        def strength_of(parts: list[slice]) -> float:
            for part in parts:
                if part.start not in maps:
                    maps[part.start] = estimator.energy_maps(up[None, :, part])
            levels = zip(*(maps[part.start] for part in parts))
            return float(estimator(None, scale_t, [torch.cat(level, dim=2) for level in levels])[0])

        return strength_of

    def _denoiser(self, plan: WindowPlan, up: torch.Tensor, guide: torch.Tensor, strength: float | None,
                  counter: WindowCounter | None = None):
        """The window-level `denoise(windows, t, batch)` callable for this clip's canvas (counting windows), every
        window conditioned on the degradation `strength` (None: the model has no such condition)."""
        dtype = self.dtype[0]

        def denoise(windows: torch.Tensor, t: float, batch: WindowBatch) -> torch.Tensor:
            cond = WindowConditions.build(plan.crop(up, batch.indices), guide, batch.masks, batch.scale,
                                          batch.crop_boxes, noise_level=0.0, keys=batch.indices,
                                          degradation=strength)
            with torch.autocast(self.device.type, DTYPES[dtype], enabled=dtype != "fp32"):
                velocity = self.model.velocity(windows, t, cond).float()
            if counter is not None:
                counter.add(len(batch.indices))
            return velocity

        return denoise


def cast_matmul_weights(model: nn.Module, dtype: torch.dtype) -> None:
    """Store the weights of every Linear and convolution of `model` in `dtype`, in place.

    Under autocast to `dtype` these layers cast their weights to it on every call anyway (autocast caches the
    cast only for weights that require grad, and a frozen inference model has none), so this gives the same
    values without the per-call copies. Norms and other parameters keep their dtype.

    Args:
        model (nn.Module): a frozen inference model, changed in place.
        dtype (torch.dtype): the autocast dtype, e.g. torch.bfloat16.
    """
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d, nn.Conv3d)):
            module.to(dtype)


class SegmentReuse:
    """The model's output z0_hat of the last clip's final segments, kept for the next clip, whose first frames
    they are (consecutive clips overlap by `clip_overlap` frames): found by comparing the frames exactly."""

    def __init__(self) -> None:
        self._entries: list[tuple[torch.Tensor, HW, torch.Tensor]] = []

    def find(self, frames: torch.Tensor, size: HW) -> torch.Tensor | None:
        """The kept z0_hat of exactly these LR frames at `size`, or None.

        Args:
            frames (torch.Tensor): (t, 3, h, w) float32 in [0, 1], the LR frames of one segment.
            size (HW): (out_h, out_w) of the output canvas.

        Returns:
            torch.Tensor | None: z0_hat (3, t, out_h, out_w), the model's scaled residual, or None if not kept.
        """
        for kept, kept_size, z0_hat in self._entries:
            if kept_size == tuple(size) and kept.shape == frames.shape and torch.equal(kept, frames.to(kept)):
                return z0_hat
        return None

    def keep(self, entries: list[tuple[torch.Tensor, HW, torch.Tensor]]) -> None:
        """Replace what is kept by (frames, size, z0_hat) entries (copied).

        Args:
            entries (list[tuple[torch.Tensor, HW, torch.Tensor]]): LR frames (t, 3, h, w), the output size
                (out_h, out_w) and z0_hat (3, t, out_h, out_w) of each segment; [] forgets everything.
        """
        self._entries = [(frames.clone(), tuple(size), z0_hat.clone()) for frames, size, z0_hat in entries]


class WindowCounter:
    """Counts window evaluations of a clip and reports the fraction done to `progress` (if any)."""

    def __init__(self, total: float, progress: Callable[[float], None] | None):
        self.total, self.progress, self.done = max(total, 1), progress, 0

    def add(self, windows: int) -> None:
        """Count window evaluations and report the fraction of the clip done.

        Args:
            windows (int): window evaluations just done.
        """
        self.done += windows
        if self.progress is not None:
            self.progress(min(1.0, self.done / self.total))


def load_trained(path: str | Path) -> tuple[PatchVSRModel, float]:
    """(model, residual_std) of a model folder written by `patchvsr train adapter` (or the shipped one);
    InputError if it is not one.

    Args:
        path (str | Path): the model folder (config.json, weights, training.json).

    Returns:
        tuple[PatchVSRModel, float]: the model on the CPU and the residual scale z0 = (HR - V_up) / residual_std.

    Raises:
        InputError: no config.json, or no training.json with residual_std.
    """
    path = Path(path)
    if not (path / "config.json").is_file():
        raise InputError(f"{path} is not a PatchVSR model folder (no config.json)")
    training = path / "training.json"
    residual_std = json.loads(training.read_text())["residual_std"] if training.is_file() else None
    if residual_std is None:
        raise InputError(f"{path} has no training.json with residual_std: not a trained PatchVSR model")
    return PatchVSRModel.from_pretrained(path), float(residual_std)


def load_upscaler(path: str | Path, device: torch.device, name: str | None = None, **options) -> PatchVSRUpscaler:
    """A PatchVSRUpscaler from a model folder written by `patchvsr train adapter` (or the shipped one).

    Args:
        path (str | Path): the model folder.
        device (torch.device): where the model runs.
        name (str, optional): the method's name in the stats; None: the folder's name.
        **options: SamplerOptions fields; None values mean the default.

    Returns:
        PatchVSRUpscaler: the upscaler, its model on `device`.

    Raises:
        InputError: `path` is not a trained model folder.
        OptionError: an option value out of range.
    """
    model, residual_std = load_trained(path)
    sampler = SamplerOptions(**{key: value for key, value in options.items() if value is not None})
    name = name or Path(path).name
    reason = json.loads((Path(path) / "training.json").read_text()).get("fidelity_only")
    if sampler.steps > 1 and reason:
        log.warning("%s is a one-step model: %s", name, reason)
    return PatchVSRUpscaler(model, residual_std, sampler, device, name)


def load_shipped(model: str, device: torch.device, **options) -> PatchVSRUpscaler:
    """The model shipped inside the package under `patchvsr/weights/<model>`.

    Args:
        model (str): the shipped model's name, e.g. "tiny".
        device (torch.device): where the model runs.
        **options: SamplerOptions fields; None values mean the default.

    Returns:
        PatchVSRUpscaler: the upscaler named `model`.

    Raises:
        OptionError: the shipped weights are missing, or an option value out of range.
    """
    folder = SHIPPED / model
    if not (folder / "config.json").is_file():
        raise OptionError(f"--model {model}: the shipped weights are missing from this installation ({folder})")
    return load_upscaler(folder, device, name=model, **options)

"""One configuration of `patchvsr bench`, measured in a process of its own: seconds and peak memory per clip.

`measure_in_child(spec, connection)` is the entry point of the child process (see `patchvsr.eval.bench`); it
builds the model, makes one synthetic LR clip, runs the upscaler on it and sends back a dict. Modes:

- `weighted`, `average`, `none`, `shifted`: the PatchVSR upscaler with that fusion (patch-wise, fixed windows);
- `full`: `FullFrameUpscaler`, the same base + adapter on one window covering the whole frame, so attention
  spans all tokens of the frame (the quadratic-cost baseline of the paper's efficiency table).

Peak memory is the process's resident high-water mark while the clips run (interpreter, libraries and model
included; the model-loading transient excluded), and on CUDA also the allocator's peak.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from pathlib import Path

import numpy as np
import psutil
import torch
import torch.nn.functional as F
from einops import rearrange

from patchvsr.devices import resolve_device
from patchvsr.errors import InputError
from patchvsr.io.synth import synthetic_frame
from patchvsr.memory import PeakMemory
from patchvsr.methods.patchvsr import DTYPES, SHIPPED, PatchVSRUpscaler, SamplerOptions, load_upscaler, start_latent
from patchvsr.models import PatchVSRModel, full_frame_conditions
from patchvsr.sampling import sample_euler
from patchvsr.sizes import HW
from patchvsr.tiling.plan import FUSION_MODES
from patchvsr.tiling.seams import seam_score

PATCH_MODES = FUSION_MODES          # band, weighted, average, none, shifted: the PatchVSR upscaler's fusions
MODES = (*PATCH_MODES, "full")      # full: the same model on one window covering the whole frame

RANDOM_PRESETS = ("lite", "tiny", "test")


class FullFrameUpscaler(PatchVSRUpscaler):
    """Baseline (c): the PatchVSR model run on a single window that is the whole (padded) frame.

    The global branch sees the frame itself (`full_frame_conditions`): mask all ones, crop box (0, 0, 1, 1).
    The canvas is padded on the bottom/right by edge replication to a multiple of twice the token patch and
    cropped back. Same sampler, start latent and residual parameterisation as the patch-wise upscaler.
    """

    reports_progress = False  # one model call per step: nothing to report inside a clip

    def window_plan(self, size: HW) -> None:
        """No plan: the whole frame is one window.

        Args:
            size (HW): (out_h, out_w) of the output canvas (unused).

        Returns:
            None: no windows, so no seams to score.
        """
        return None  # no windows: no seams to score

    def describe(self) -> dict:
        """Stats fields of the method (see `Upscaler.describe`).

        Returns:
            dict: windows_per_clip (1), steps, fusion ("full"), temporal_radius.
        """
        return {"windows_per_clip": 1, "steps": self.options.steps, "fusion": "full",
                "temporal_radius": self.options.temporal_radius}

    @torch.no_grad()
    def upscale_clip(self, clip: torch.Tensor, size: HW, clip_index: int) -> torch.Tensor:
        """Upscale one clip with the model on the whole (padded) frame.

        Args:
            clip (torch.Tensor): (T, 3, H, W) float32 in [0, 1], the LR frames.
            size (HW): (out_h, out_w) of the output frames.
            clip_index (int): index of the clip in the video (>= 0); seeds the noise of the detail mode.

        Returns:
            torch.Tensor: (T, 3, out_h, out_w) float32 in [0, 1] on the CPU.
        """
        up = F.interpolate(clip.to(self.device), size=size, mode="bicubic", align_corners=False).clamp_(0, 1)
        up = rearrange(up, "t c h w -> c t h w") * 2.0 - 1.0                        # (3, T, oh, ow) in [-1, 1]
        multiple = 2 * self.model.token_patch[1]
        pad = (0, -size[1] % multiple, 0, -size[0] % multiple)
        canvas = F.pad(up, pad, mode="replicate")                                   # (3, T, H', W')
        scale = (size[0] / clip.shape[-2] + size[1] / clip.shape[-1]) / 2.0
        cond = dataclasses.replace(full_frame_conditions(canvas[None], scale), keys=("full",))  # cached branches
        self.model.cache.clear()

        def velocity(z: torch.Tensor, t: float, step_index: int) -> torch.Tensor:
            with torch.autocast(self.device.type, DTYPES[self.dtype[0]], enabled=self.dtype[0] != "fp32"):
                return self.model.velocity(z[None], t, cond)[0].float()

        z0_hat = sample_euler(velocity, start_latent(self.options, canvas, clip_index), self.options.timesteps())
        self.model.cache.clear()
        up = canvas[:, :, : size[0], : size[1]]
        strength = self._strengths(up, scale)([slice(0, up.shape[1])])
        return self._output(up, z0_hat[:, :, : size[0], : size[1]], clip, strength)


def build_upscaler(model: str, mode: str, options: dict, device: torch.device) -> PatchVSRUpscaler:
    """The upscaler of `mode` for `model`: "tiny" (the shipped weights, else a random-weight tiny preset),
    "test" (random-weight test preset) or a trained model's folder. options: SamplerOptions fields.
    The temporal detail filter is off unless options set it and clips are the model's native length unless
    options set `clip_frames`: the study times the network and the tiling on one model run per clip.

    Args:
        model (str): "tiny", "test" or a trained model's folder.
        mode (str): one of MODES (a fusion mode, or "full").
        options (dict): SamplerOptions fields (`fusion` is set by `mode`).
        device (torch.device): where the model runs.

    Returns:
        PatchVSRUpscaler: a `FullFrameUpscaler` for "full", else a `PatchVSRUpscaler` with fusion `mode`.

    Raises:
        ValueError: an unknown mode.
        InputError: a folder that is not a trained model.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    sampler = SamplerOptions(**{"temporal_radius": 0, **options, "fusion": "none" if mode == "full" else mode})
    cls = FullFrameUpscaler if mode == "full" else PatchVSRUpscaler
    folder = model_folder(model)
    if folder is None:
        network, residual_std = PatchVSRModel.from_preset(model, seed=0), 1.0
    else:
        loaded = load_upscaler(folder, torch.device("cpu"))
        network, residual_std = loaded.model, loaded.residual_std
    if sampler.clip_frames is None:
        sampler = dataclasses.replace(sampler, clip_frames=network.clip_frames)
    return cls(network, residual_std, sampler, device, name=model)


def model_folder(model: str) -> Path | None:
    """The weights folder of `model`, or None for a random-weight preset (the shipped weights are absent).

    Args:
        model (str): "lite", "tiny", "test" or a model folder.

    Returns:
        Path | None: the folder (not checked for other names), or None.
    """
    if model in RANDOM_PRESETS:
        shipped = SHIPPED / model
        return shipped if (shipped / "config.json").is_file() else None
    return Path(model)


def describe_model(model: str) -> str:
    """The `model` field of the bench JSON: which weights were timed.

    Args:
        model (str): "lite", "tiny", "test" or a model folder.

    Returns:
        str: one sentence naming the weights.
    """
    folder = model_folder(model)
    if folder is None:
        return (f"{model} preset with random weights (shipped weights absent; timing and memory do not depend "
                "on weight values)")
    return f"{model} (trained weights from {folder})" if model in RANDOM_PRESETS else f"trained model {folder}"


def lr_clip(size: HW, scale: int, frames: int) -> torch.Tensor:
    """A synthetic LR clip (`patchvsr.io.synth.synthetic_frame`) for an output of `size`.

    Args:
        size (HW): (out_h, out_w) of the output.
        scale (int): the upscaling factor.
        frames (int): frames of the clip.

    Returns:
        torch.Tensor: (frames, 3, out_h // scale, out_w // scale) float32 in [0, 1] (each side at least 1).
    """
    height, width = max(1, size[0] // scale), max(1, size[1] // scale)
    stack = np.stack([synthetic_frame(i, width, height) for i in range(frames)])    # (T, h, w, 3) uint8
    return rearrange(torch.from_numpy(stack), "t h w c -> t c h w").float().div_(255.0)


def time_clips(upscaler: PatchVSRUpscaler, clip: torch.Tensor, size: HW,
               budget_s: float, max_runs: int = 5) -> tuple[float, float, int, torch.Tensor]:
    """Median wall seconds and median process CPU seconds of one `upscale_clip` call, how many calls
    they are the median of, and the last call's output frames.

    Calls repeat until `budget_s` wall seconds or `max_runs` calls are spent; the first call is a warm-up and
    is dropped whenever a second one fits (a call longer than the budget is reported alone: start-up costs
    are then a negligible part of it). CPU time counts every thread of the process, so with one thread it
    is what the call would take on an otherwise idle core, whatever else the machine runs.

    Args:
        upscaler (PatchVSRUpscaler): the upscaler timed.
        clip (torch.Tensor): (T, 3, h, w) float32 in [0, 1], the LR clip.
        size (HW): (out_h, out_w) of the output frames.
        budget_s (float): wall seconds the calls may take together (at least one call runs).
        max_runs (int, optional): most calls.

    Returns:
        tuple[float, float, int, torch.Tensor]: median wall seconds, median CPU seconds, the number of calls
        they are the median of, and the last output (T, 3, out_h, out_w) float32 in [0, 1] on the CPU.
    """
    wall: list[float] = []
    cpu: list[float] = []
    while not wall or (sum(wall) < budget_s and len(wall) < max_runs):
        upscaler.forget_previous_clip()  # the same clip again would take its segments from the last call
        start, start_cpu = time.perf_counter(), time.process_time()
        out = upscaler.upscale_clip(clip, size, clip_index=0)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    first = 1 if len(wall) > 1 else 0
    return statistics.median(wall[first:]), statistics.median(cpu[first:]), len(wall) - first, out


def seam_scores(frames: torch.Tensor, clip: torch.Tensor, plan) -> tuple[float | None, float | None]:
    """Seam score of output frames for `plan` (None: no windows), raw and over the score of the
    bicubic upscale of the same LR clip on the same lines (which has no seams).

    Args:
        frames (torch.Tensor): (T, 3, H, W) float32 in [0, 1] on the CPU, the output frames.
        clip (torch.Tensor): (T, 3, h, w) float32 in [0, 1] on the CPU, the LR clip they were made from.
        plan (WindowPlan, optional): the plan of the (H, W) canvas; None: no windows.

    Returns:
        tuple[float | None, float | None]: the raw score and its ratio to bicubic's (1.0: no visible seams),
        (None, None) without a plan.
    """
    if plan is None:
        return None, None
    bicubic = F.interpolate(clip, size=frames.shape[-2:], mode="bicubic", align_corners=False).clamp(0, 1)
    raw = seam_score(frames.transpose(0, 1), plan)
    return raw, raw / seam_score(bicubic.transpose(0, 1), plan)


def measure(spec: dict) -> dict:
    """Run one configuration.

    Args:
        spec (dict): model, mode, size (out_h, out_w), scale, frames (None: the model's), threads (None: PyTorch's
            default), device, options (SamplerOptions fields), budget_s.

    Returns:
        dict: seam_score, seam_vs_bicubic, seconds, cpu_seconds, runs, peak_rss_mb, base_rss_mb, peak_gpu_mb
        (None off CUDA), windows_per_clip, frames, device, threads.
    """
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    device = resolve_device(spec["device"])
    options = {**spec["options"], "clip_frames": spec.get("frames")}
    upscaler = build_upscaler(spec["model"], spec["mode"], options, device)
    size = tuple(spec["size"])
    clip = lr_clip(size, spec["scale"], upscaler.clip_frames)
    memory = PeakMemory()
    memory.reset()                                        # high-water mark := now (model and input loaded)
    base_mb = psutil.Process().memory_info().rss / 2**20
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds, cpu_seconds, runs, out = time_clips(upscaler, clip, size, spec["budget_s"])
    seam, seam_vs_bicubic = seam_scores(out.cpu(), clip, upscaler.window_plan(size))
    return {
        "seam_score": seam, "seam_vs_bicubic": seam_vs_bicubic,
        "seconds": seconds, "cpu_seconds": cpu_seconds, "runs": runs, "peak_rss_mb": memory.peak_mb(),
        "base_rss_mb": base_mb,
        "peak_gpu_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
        "windows_per_clip": upscaler.describe()["windows_per_clip"], "frames": upscaler.clip_frames,
        "device": str(device), "threads": torch.get_num_threads(),
    }


def measure_in_child(spec: dict, connection) -> None:
    """Child-process entry point: send `measure(spec)`, or {"error": "..."} if it raised.

    Args:
        spec (dict): the configuration (see `measure`).
        connection: the sending end of a multiprocessing Pipe, closed afterwards.
    """
    try:
        result = measure(spec)
    except Exception as err:  # noqa: BLE001 - reported to the parent as a failed configuration
        result = {"error": f"{type(err).__name__}: {err}"}
    connection.send(result)
    connection.close()


def model_info_in_child(spec: dict, connection) -> None:
    """Child-process entry point: send {"description", "folder"} for spec["model"]; a random-weight preset
    is first saved into spec["folder"] (with residual_std 1) so that `patchvsr upscale --model` can load it.

    Args:
        spec (dict): model ("lite", "tiny", "test" or a folder) and folder (where to save a random-weight preset).
        connection: the sending end of a multiprocessing Pipe, closed afterwards.
    """
    try:
        folder = model_folder(spec["model"])
        if folder is None:
            folder = Path(spec["folder"])
            PatchVSRModel.from_preset(spec["model"], seed=0).save_pretrained(folder, card="Random weights (bench).")
            (folder / "training.json").write_text(json.dumps({"residual_std": 1.0}) + "\n")
        elif not (folder / "config.json").is_file():
            raise InputError(f"{folder} is not a PatchVSR model folder (no config.json)")
        result = {"description": describe_model(spec["model"]), "folder": str(folder)}
    except Exception as err:  # noqa: BLE001 - reported to the parent
        result = {"error": f"{type(err).__name__}: {err}"}
    connection.send(result)
    connection.close()

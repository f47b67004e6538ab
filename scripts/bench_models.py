"""Model cost on this machine: parameters per preset, forward time and FLOPs per window, bf16 accuracy.

For each preset it builds a random-weight PatchVSRModel (weights perturbed so no path is zero) and times, on a
batch of windows of the preset's native size (T frames x w x w px), in fp32 and under bf16 autocast:
  - step:     one sampling step with cached branch features (what every step after the first costs),
  - branches: the patch + global branch features (once per window and clip),
  - base:     the base alone (stage 1 / full-frame baseline).
FLOPs come from torch's FlopCounterMode (matmuls, convolutions, attention); "peak" is the fraction of the
matmul FLOP/s measured in the same run (square bf16/fp32 matmuls). It also reports the bf16-vs-fp32 relative
error of the velocity, the full-frame (one window = whole frame) cost against the patch-wise cost, and the
projected time of the 176x144 x4 job (704x576, 120 frames, `weighted` fusion) per sampling step.

    .venv/bin/python scripts/bench_models.py [--presets test,tiny] [--batch 8] [--json out.json] [--model DIR]
        [--threads 1 --clock cpu]     # robust per-core numbers on a machine shared with other jobs
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from patchvsr.models import PatchVSRModel, full_frame_conditions

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))   # the test helpers are not in the wheel
from model_helpers import perturb_, random_conditions, random_noisy  # noqa: E402
from patchvsr.tiling import make_plan

PRECISIONS = ("fp32", "bf16")


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
CLOCK = {"now": time.perf_counter}


def best_seconds(fn, repeats: int) -> float:
    """Best time of `repeats` calls after one warm-up call (the machine is shared: the minimum is the least
    disturbed run). The clock is wall time, or process CPU time with `--clock cpu` (robust to other processes
    when run with `--threads 1`)."""
    fn()
    times = []
    for _ in range(repeats):
        start = CLOCK["now"]()
        fn()
        times.append(CLOCK["now"]() - start)
    return min(times)


def precision(name: str):
    """Context for fp32 (nothing) or bf16 autocast on CPU."""
    if name == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def matmul_peak(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """Measured FLOP/s of a square matmul in `dtype`."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    return 2 * size**3 / best_seconds(lambda: a @ b, repeats)


def count_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def workloads(model: PatchVSRModel, batch: int, seed: int) -> dict:
    """name -> zero-argument callable for one batch of `batch` native windows."""
    size, frames = model.window_size, model.clip_frames
    cond = random_conditions(model.base.spec.in_channels, batch, frames, (size, size), seed, keys=range(batch))
    fresh = random_conditions(model.base.spec.in_channels, batch, frames, (size, size), seed)
    z, t = random_noisy(model.base.spec.in_channels, batch, frames, (size, size), seed)

    def step():
        return model.velocity(z, t, cond)

    return {
        "step": step,
        "branches": lambda: model.adapter.branch_features(fresh.lr_up, fresh.global_input),
        "base": lambda: model.base(z, t),
        "uncached": lambda: model.velocity(z, t, fresh),
    }


def bench_preset(model: PatchVSRModel, batch: int, repeats: int, peaks: dict) -> dict:
    """Per-window milliseconds, GFLOPs and fraction of peak for every workload and precision."""
    rows = {}
    with torch.inference_mode():
        jobs = workloads(model, batch, seed=0)
        for name, fn in jobs.items():
            fn()                                   # fills the branch cache, so "step" counts a cached step
            flops = count_flops(fn) / batch
            for prec in PRECISIONS:
                with precision(prec):
                    seconds = best_seconds(fn, repeats) / batch
                rows[f"{name}_{prec}"] = {
                    "ms_per_window": round(1e3 * seconds, 3),
                    "gflop_per_window": round(flops / 1e9, 4),
                    "fraction_of_peak": round(flops / seconds / peaks[prec], 3),
                }
    return rows


def bf16_relative_error(model: PatchVSRModel, batch: int) -> float:
    """||v_bf16 - v_fp32|| / ||v_fp32|| on random windows (uncached)."""
    size, frames = model.window_size, model.clip_frames
    cond = random_conditions(model.base.spec.in_channels, batch, frames, (size, size), seed=1)
    z, t = random_noisy(model.base.spec.in_channels, batch, frames, (size, size), seed=1)
    with torch.inference_mode():
        reference = model.velocity(z, t, cond)
        with precision("bf16"):
            low = model.velocity(z, t, cond)
    return float((low.float() - reference).norm() / reference.norm())


def full_frame_costs(model: PatchVSRModel, sizes: list[tuple[int, int]], prec: str, batch: int) -> list[dict]:
    """Seconds of one step in full-frame mode (one window = the whole H x W frame, cost quadratic in the
    pixels) vs. patch-wise (windows of the `weighted` plan x measured seconds per window, linear)."""
    frames, window = model.clip_frames, model.window_size
    results = []
    with torch.inference_mode(), precision(prec):
        jobs = workloads(model, batch, seed=3)
        per_window = best_seconds(jobs["step"], 2) / batch
        for height, width in sizes:
            args = full_frame_workload(model, (height, width), frames)
            seconds = best_seconds(lambda: model.velocity(*args), 1)
            windows = len(make_plan((height, width), (window, window), "weighted").windows)
            results.append({"size": f"{height}x{width}", "full_frame_s": round(seconds, 3),
                            "patchwise_s": round(windows * per_window, 3), "patchwise_windows": windows})
    return results


def full_frame_workload(model: PatchVSRModel, size: tuple[int, int], frames: int) -> tuple:
    lr_up = torch.rand(1, model.base.spec.in_channels, frames, *size) * 2 - 1
    z, t = random_noisy(model.base.spec.in_channels, 1, frames, size, seed=2)
    return z, t, full_frame_conditions(lr_up, scale=4.0, noise_level=0.25)


def projected_job(ms_per_window: float, window: int, frames: int) -> dict:
    """176x144 x4 -> 704x576, 120 frames: seconds per sampling step over the whole video (clips without
    temporal overlap), weighted fusion."""
    windows = len(make_plan((576, 704), (window, window), "weighted").windows)
    clips = math.ceil(120 / frames)
    return {"windows_per_clip_step": windows, "clips": clips,
            "seconds_per_step_whole_video": round(clips * windows * ms_per_window / 1e3, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", default="test,tiny,small")
    parser.add_argument("--batch", type=int, default=8, help="windows per model call (at most 2 for small)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--full-frame", default="128x128,256x256,576x704",
                        help="full-frame sizes HxW to time (tiny only; multiples of 16)")
    parser.add_argument("--model", help="a saved PatchVSRModel folder to use instead of random 'tiny' weights")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the base (slow first call)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    CLOCK["now"] = CLOCKS[args.clock]

    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    report = {"threads": torch.get_num_threads(), "clock": args.clock, "compile": args.compile,
              "load_average_1min": os.getloadavg()[0],
              "matmul_gflops": {k: round(v / 1e9, 1) for k, v in peaks.items()}, "presets": {}}
    print(f"matmul peak: fp32 {peaks['fp32'] / 1e9:.0f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s")
    for name in args.presets.split(","):
        if args.model and name == "tiny":
            model = PatchVSRModel.from_pretrained(args.model)
        else:
            model = perturb_(PatchVSRModel.from_preset(name), seed=0, std=0.02).eval()
        model.merge_lora()                         # the inference configuration
        if args.compile:
            model.base = torch.compile(model.base)
        batch = args.batch if name != "small" else min(args.batch, 2)
        entry = {"parameters": model.parameter_counts(), "window": [model.clip_frames, model.window_size],
                 "batch": batch, "timings": bench_preset(model, batch, args.repeats, peaks),
                 "bf16_relative_error": round(bf16_relative_error(model, min(batch, 4)), 5)}
        entry["cache_bytes_per_window"] = model.cache.nbytes() // max(len(model.cache), 1)
        if name != "test":
            entry["projected_704x576_120f"] = projected_job(
                entry["timings"]["step_bf16"]["ms_per_window"], model.window_size, model.clip_frames)
        if name == "tiny" and args.full_frame:
            sizes = [tuple(int(n) for n in size.split("x")) for size in args.full_frame.split(",")]
            entry["full_frame_bf16"] = full_frame_costs(model, sizes, "bf16", batch)
        report["presets"][name] = entry
        print(json.dumps({name: entry}, indent=1))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()

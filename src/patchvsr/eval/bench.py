"""`patchvsr bench`: the efficiency study. Seconds and peak memory per clip against output size, per mode.

For one model and each output size (smallest first), every mode runs one synthetic clip in a fresh child
process (`patchvsr.eval.bench_worker`), so no configuration's memory peak hides another's:

    mode in (weighted, none, shifted, full) ─► for size in sizes (ascending output pixels):
        predicted from the fit of the sizes measured so far > time or memory cap ─► ESTIMATED (and all larger)
        else child process: model + LR clip ─► upscale_clip, timed ─► seconds, peak RSS (measured)
    fits: log seconds = b·log pixels + a over the FIT_POINTS largest measured sizes (b: the growth exponent)
    ratios: full-frame / patch-wise seconds and memory at the largest size both measured
    RSS vs video length: `patchvsr upscale --stats` subprocesses on synthetic videos (`bench_rss`)

Estimated rows carry `"estimated": true` and the `reason`; their values come from the fitted power laws
(seconds: a·n^b; memory: the largest measured row's pre-clip RSS plus a power law of the clip's own memory).
Each row has wall `seconds` and process `cpu_seconds`; `BenchConfig.clock` picks the one that fits, caps,
estimates, ratios and plots use (`cpu` with one thread is robust to other jobs on a shared machine).
CPU children are forked from a `forkserver` that has imported the model code once (fresh processes without
paying the import again); CUDA children are spawned, since CUDA does not survive a fork. Either way a script
calling `run_bench` needs the usual `if __name__ == "__main__":` guard (the `patchvsr` command has it).
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from patchvsr.errors import OptionError
from patchvsr.eval.bench_worker import MODES, PATCH_MODES
from patchvsr.methods import DEFAULT_MODEL
from patchvsr.sizes import WH

# (width, height): 256² up to 2K DCI and 4K UHD; roughly doubling pixels per step.
DEFAULT_SIZES = ((256, 256), (384, 384), (512, 512), (960, 540), (1280, 720), (2048, 1080), (3840, 2160))
QUICK_SIZES = ((32, 32), (48, 48), (64, 64))
DEFAULT_MODES = ("band", "weighted", "none", "shifted", "full")
FIT_POINTS = 3      # exponents are fitted over this many of the largest measured sizes
MIN_MEASURED = 2    # the smallest sizes of every mode are always measured (a fit needs two points)
ROW_FIELDS = ("mode", "width", "height", "pixels", "windows_per_clip", "frames", "seconds", "cpu_seconds",
              "peak_rss_mb", "clip_mb", "peak_gpu_mb", "seam_score", "seam_vs_bicubic", "runs", "estimated", "reason")
CLOCKS = {"wall": "seconds", "cpu": "cpu_seconds"}  # --clock -> the row field that fits and caps use


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """What to measure. sizes: output (width, height) pairs; modes: subset of bench_worker.MODES; frames: frames per
    clip (None: the model's); steps, dtype, batch: sampler options (steps=2 so that `shifted`, which alternates two
    grids, differs from `none`; batch None: the device's default); scale: LR -> output factor; threads: CPU threads
    per child (None: PyTorch's default); time_cap_s: largest predicted seconds per clip still measured;
    memory_cap_mb: largest predicted peak RSS still measured (None: 60 % of the memory available at start);
    budget_s: timing budget per configuration (calls repeat within it); rss_seconds: the two video lengths of the
    RSS-vs-length study (0 disables it); rss_model: also run the model there, not only bicubic; rss_overlap: start
    those runs together with the timing runs (smoke runs only: they share the CPU);
    clock: "wall" (elapsed seconds) or "cpu" (process CPU seconds: with threads=1, the time on an idle core
    even when the machine is shared) drives the fits, caps, estimates, ratios and plots."""

    model: str = DEFAULT_MODEL
    sizes: tuple[WH, ...] = DEFAULT_SIZES
    modes: tuple[str, ...] = DEFAULT_MODES
    frames: int | None = None
    steps: int = 2
    dtype: str = "auto"
    batch: int | None = None
    scale: int = 4
    threads: int | None = None
    device: str = "auto"
    time_cap_s: float = 150.0
    memory_cap_mb: float | None = None
    budget_s: float = 10.0
    rss_seconds: tuple[float, float] = (5.0, 60.0)
    rss_model: bool = True
    rss_overlap: bool = False
    clock: str = "wall"

    def __post_init__(self):
        if not self.sizes or any(len(s) != 2 or min(s) < 1 for s in self.sizes):
            raise ValueError(f"sizes must be (width, height) pairs >= 1, got {self.sizes!r}")
        bad = [m for m in self.modes if m not in MODES]
        if not self.modes or bad or len(set(self.modes)) != len(self.modes):
            raise ValueError(f"modes must be distinct names among {', '.join(MODES)}, got {self.modes!r}")
        for name in ("steps", "scale"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        for name in ("frames", "threads", "batch"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not self.time_cap_s > 0 or not self.budget_s >= 0:
            raise ValueError(f"time_cap_s must be > 0 and budget_s >= 0, got {self.time_cap_s}, {self.budget_s}")
        if self.memory_cap_mb is not None and not self.memory_cap_mb > 0:
            raise ValueError(f"memory_cap_mb must be > 0, got {self.memory_cap_mb!r}")
        if len(self.rss_seconds) != 2 or not 0 <= self.rss_seconds[0] <= self.rss_seconds[1]:
            raise ValueError(f"rss_seconds must be two lengths, shortest first, got {self.rss_seconds!r}")
        if self.clock not in CLOCKS:
            raise ValueError(f"clock must be one of {', '.join(CLOCKS)}, got {self.clock!r}")
        if self.rss_overlap and self.rss_model:
            raise ValueError("rss_overlap starts the RSS runs before the model exists: set rss_model=False")

    @classmethod
    def quick(cls, **overrides) -> "BenchConfig":
        """A seconds-long run for tests: the test preset on 32² and 48² (64² estimated: the time cap is
        tiny), short RSS videos, bicubic only.

        Args:
            **overrides: BenchConfig fields that replace the quick ones.

        Returns:
            BenchConfig: the quick configuration.
        """
        fields = dict(model="test", sizes=QUICK_SIZES, budget_s=0.0, time_cap_s=1e-3, rss_seconds=(0.4, 2.0),
                      rss_model=False, rss_overlap=True)
        return cls(**{**fields, **overrides})


# ----- fits and estimates -----------------------------------------------------------------------------------
def fit_power_law(pixels, values) -> tuple[float, float]:
    """Least squares of log(values) on log(pixels): values ≈ coefficient · pixels^exponent.

    Args:
        pixels (Sequence[float]): positive pixel counts, at least two distinct ones.
        values (Sequence[float]): positive values, as many as `pixels`.

    Returns:
        tuple[float, float]: (exponent, coefficient).

    Raises:
        ValueError: fewer than two distinct pixel counts.
    """
    x, y = np.log(np.asarray(pixels, dtype=float)), np.log(np.asarray(values, dtype=float))
    if len(x) < 2 or np.ptp(x) == 0:
        raise ValueError(f"a power-law fit needs two distinct sizes, got pixels {list(pixels)}")
    exponent, intercept = np.polyfit(x, y, 1)
    return float(exponent), float(math.exp(intercept))


def fit_rows(rows: list[dict], points: int = FIT_POINTS) -> list[dict]:
    """The `points` largest measured rows of one mode (the fit range), smallest first.

    Args:
        rows (list[dict]): rows of one mode (ROW_FIELDS).
        points (int, optional): how many rows the fit range holds at most.

    Returns:
        list[dict]: the measured (not estimated) rows of the fit range, by ascending pixels.
    """
    measured = sorted((r for r in rows if not r["estimated"]), key=lambda r: r["pixels"])
    return measured[-points:]


def predict(rows: list[dict], pixels: int, key: str = "seconds") -> tuple[float, float] | None:
    """(time `key`, peak RSS MB) at `pixels` from the fit range of measured `rows`; None with < 2 of them.

    Args:
        rows (list[dict]): rows of one mode (ROW_FIELDS).
        pixels (int): output pixels per frame (width · height) to predict at.
        key (str, optional): the time field, "seconds" or "cpu_seconds" (see CLOCKS).

    Returns:
        tuple[float, float] | None: predicted seconds per clip and peak RSS in MB, or None.
    """
    fit = fit_rows(rows)
    if len(fit) < 2:
        return None
    exponent, coefficient = fit_power_law([r["pixels"] for r in fit], [r[key] for r in fit])
    m_exponent, m_coefficient = fit_power_law([r["pixels"] for r in fit], [max(r["clip_mb"], 1.0) for r in fit])
    memory = fit[-1]["peak_rss_mb"] - fit[-1]["clip_mb"] + m_coefficient * pixels**m_exponent
    return coefficient * pixels**exponent, memory


def over_cap(rows: list[dict], pixels: int, time_cap_s: float, memory_cap_mb: float,
             key: str = "seconds") -> str | None:
    """Why a size must not be measured (prediction beyond a cap), or None to measure it.

    Args:
        rows (list[dict]): the rows of the mode so far (ROW_FIELDS).
        pixels (int): output pixels per frame (width · height) of the size.
        time_cap_s (float): largest predicted seconds per clip still measured.
        memory_cap_mb (float): largest predicted peak RSS in MB still measured.
        key (str, optional): the time field, "seconds" or "cpu_seconds" (see CLOCKS).

    Returns:
        str | None: the reason, or None (always None before MIN_MEASURED rows are measured).
    """
    if len([r for r in rows if not r["estimated"]]) < MIN_MEASURED:
        return None
    seconds, memory = predict(rows, pixels, key)
    if seconds > time_cap_s:
        return f"predicted {seconds:.3g} s per clip > time cap {time_cap_s:.3g} s"
    if memory > memory_cap_mb:
        return f"predicted peak RSS {memory:.0f} MB > memory cap {memory_cap_mb:.0f} MB"
    return None


def fill_estimates(rows: list[dict], key: str = "seconds") -> None:
    """Give every estimated row of one mode its time `key` and memory from the final fit (None without).

    Args:
        rows (list[dict]): rows of one mode (ROW_FIELDS), changed in place.
        key (str, optional): the time field, "seconds" or "cpu_seconds" (see CLOCKS).
    """
    measured = [r for r in rows if not r["estimated"]]
    for row in rows:
        if row["estimated"]:
            guess = predict(measured, row["pixels"], key)
            row[key], row["peak_rss_mb"] = guess if guess else (None, None)
            if guess:
                row["clip_mb"] = guess[1] - (measured[-1]["peak_rss_mb"] - measured[-1]["clip_mb"])


def growth_summary(rows: list[dict], key: str = "seconds") -> dict:
    """Time (`key`) and memory growth exponents of one mode: over the fit range and over all measured sizes.

    Args:
        rows (list[dict]): rows of one mode (ROW_FIELDS).
        key (str, optional): the time field, "seconds" or "cpu_seconds" (see CLOCKS).

    Returns:
        dict: time_exponent, memory_exponent, fit_sizes ("WxH" names), time_exponent_all_sizes and fit_pixels;
        with fewer than two measured sizes the exponents are None and fit_pixels is absent.
    """
    fit, measured = fit_rows(rows), fit_rows(rows, points=len(rows))
    if len(fit) < 2:
        return {"time_exponent": None, "memory_exponent": None, "fit_sizes": [_name(r) for r in fit],
                "time_exponent_all_sizes": None}
    pixels = [r["pixels"] for r in fit]
    return {
        "time_exponent": round(fit_power_law(pixels, [r[key] for r in fit])[0], 3),
        "memory_exponent": round(fit_power_law(pixels, [max(r["clip_mb"], 1.0) for r in fit])[0], 3),
        "fit_sizes": [_name(r) for r in fit], "fit_pixels": [pixels[0], pixels[-1]],
        "time_exponent_all_sizes": round(fit_power_law([r["pixels"] for r in measured],
                                                       [r[key] for r in measured])[0], 3),
    }


def full_frame_ratios(rows: list[dict], key: str = "seconds") -> dict:
    """Per patch-wise mode: full-frame / patch-wise time `key` (the speed-up) and memory, at the largest size
    both measured, and at the largest size of the run (estimates included, flagged).

    Args:
        rows (list[dict]): rows of every mode (ROW_FIELDS), "full" among them.
        key (str, optional): the time field, "seconds" or "cpu_seconds" (see CLOCKS).

    Returns:
        dict: mode -> {"largest_measured", "largest_size"}, each a ratio dict (size, pixels, speedup,
        memory_ratio, clip_memory_ratio, estimated) or None.
    """
    full = {r["pixels"]: r for r in rows if r["mode"] == "full"}
    ratios = {}
    for mode in dict.fromkeys(r["mode"] for r in rows if r["mode"] in PATCH_MODES):
        pairs = [(r, full[r["pixels"]]) for r in rows if r["mode"] == mode and r["pixels"] in full
                 and r[key] is not None and full[r["pixels"]][key] is not None]
        both = [(p, f) for p, f in pairs if not p["estimated"] and not f["estimated"]]
        ratios[mode] = {"largest_measured": _ratio(*both[-1], key) if both else None,
                        "largest_size": _ratio(*pairs[-1], key) if pairs else None}
    return ratios


def _ratio(patch: dict, full: dict, key: str) -> dict:
    return {"size": _name(patch), "pixels": patch["pixels"], "speedup": round(full[key] / patch[key], 3),
            "memory_ratio": round(full["peak_rss_mb"] / patch["peak_rss_mb"], 3),
            "clip_memory_ratio": round(max(full["clip_mb"], 1.0) / max(patch["clip_mb"], 1.0), 3),
            "estimated": patch["estimated"] or full["estimated"]}


def _name(row: dict) -> str:
    return f"{row['width']}x{row['height']}"


# ----- measuring ----------------------------------------------------------------------------------------------
def _context(device: str):
    """forkserver (model code imported once, then forked per configuration) on CPU; spawn for CUDA."""
    if device.startswith("cuda"):
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["patchvsr.eval.bench_worker"])
    return context


def run_child(context, target: Callable, spec: dict, timeout_s: float) -> dict:
    """Run target(spec, connection) in a new process; its dict, or {"error": ...} if it failed or timed out.

    Args:
        context: a multiprocessing context (see `_context`).
        target (Callable): the child's entry point, e.g. `bench_worker.measure_in_child`.
        spec (dict): its configuration.
        timeout_s (float): seconds to wait for the answer before killing the child.

    Returns:
        dict: what the child sent, or {"error": reason}.
    """
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=target, args=(spec, sender), daemon=True)
    process.start()
    sender.close()
    try:
        if receiver.poll(timeout_s):
            return receiver.recv()
        return {"error": f"timed out after {timeout_s:.0f} s"}
    except EOFError:  # died without answering: killed (out of memory) or crashed
        process.join(5)
        return {"error": f"process died (exit code {process.exitcode}; out of memory?)"}
    finally:
        if process.is_alive():
            process.kill()
        process.join()
        receiver.close()


def bench_mode(mode: str, config: BenchConfig, device: str, memory_cap_mb: float, context,
               log: Callable[[str], None]) -> list[dict]:
    """Rows of one mode for every size (ascending pixels): measured until a cap or a failure, then estimated.

    Args:
        mode (str): one of bench_worker.MODES.
        config (BenchConfig): the study; its sizes are (width, height).
        device (str): the resolved device, e.g. "cpu" or "cuda:0".
        memory_cap_mb (float): largest predicted peak RSS in MB still measured.
        context: the multiprocessing context of the children (see `_context`).
        log (Callable[[str], None]): told one line per size.

    Returns:
        list[dict]: one row (ROW_FIELDS) per size, by ascending pixels.
    """
    from patchvsr.eval.bench_worker import measure_in_child

    rows, stop, key = [], None, CLOCKS[config.clock]  # stop: why the first unmeasured size was not measured
    for width, height in sorted(config.sizes, key=lambda s: (s[0] * s[1], s)):
        row = dict.fromkeys(ROW_FIELDS) | {"mode": mode, "width": width, "height": height,
                                           "pixels": width * height, "runs": 0, "estimated": True}
        reason = over_cap(rows, width * height, config.time_cap_s, memory_cap_mb, key) or stop
        if reason is None:
            spec = {"model": config.model, "mode": mode, "size": (height, width), "scale": config.scale,
                    "frames": config.frames, "threads": config.threads, "device": device,
                    "budget_s": config.budget_s,
                    "options": {"steps": config.steps, "dtype": config.dtype, "batch": config.batch}}
            guess = predict(rows, width * height, key)
            timeout = max(60.0, 5 * guess[0] + 60, 2 * config.time_cap_s) if guess else 4 * config.time_cap_s + 60
            result = run_child(context, measure_in_child, spec, timeout)
            reason = result.get("error")
            if reason is None:
                row.update({k: result[k] for k in ("windows_per_clip", "frames", "runs", "seconds", "cpu_seconds",
                                                   "seam_score", "seam_vs_bicubic")},
                           estimated=False, peak_rss_mb=result["peak_rss_mb"],
                           clip_mb=result["peak_rss_mb"] - result["base_rss_mb"], peak_gpu_mb=result["peak_gpu_mb"])
        row["reason"] = stop = reason
        rows.append(row)
        log(f"{mode} {width}x{height}: " + (f"{row['seconds']:.3f} s per clip ({row['cpu_seconds']:.3f} s CPU), "
                                            f"peak RSS {row['peak_rss_mb']:.0f} MB" if reason is None
                                            else f"estimated ({reason})"))
    fill_estimates(rows, key)
    return rows


def default_memory_cap() -> float:
    """60 % of the memory available now, in MB (the machine may be shared).

    Returns:
        float: the memory cap in MB.
    """
    import psutil

    return 0.6 * psutil.virtual_memory().available / 2**20


def run_bench(config: BenchConfig, log: Callable[[str], None] = lambda line: None) -> dict:
    """The whole study as a JSON-ready dict: model, settings, rows, fits, ratios, rss_vs_length.

    Args:
        config (BenchConfig): what to measure.
        log (Callable[[str], None], optional): told one line per measurement.

    Returns:
        dict: model (description), settings, rows (ROW_FIELDS), fits (per mode), ratios, rss_vs_length.

    Raises:
        OptionError: the model cannot be loaded, or an unknown device.
    """
    import torch

    from patchvsr.eval.bench_rss import finish_rss_runs, start_rss_runs
    from patchvsr.eval.bench_worker import model_info_in_child
    from patchvsr.devices import resolve_device

    started, key = time.perf_counter(), CLOCKS[config.clock]
    device = str(resolve_device(config.device))
    memory_cap = config.memory_cap_mb or default_memory_cap()
    context = _context(device)
    with tempfile.TemporaryDirectory(prefix="patchvsr-bench-") as folder:
        early = start_rss_runs(config, device, None, Path(folder)) if config.rss_overlap else []
        model = run_child(context, model_info_in_child, {"model": config.model, "folder": folder + "/model"}, 600)
        if "error" in model:
            finish_rss_runs(early)
            raise OptionError(f"--model {config.model}: {model['error']}")
        rows = [row for mode in config.modes for row in bench_mode(mode, config, device, memory_cap, context, log)]
        rss = finish_rss_runs(early or start_rss_runs(config, device, model["folder"], Path(folder)), log)
    for row in rows:
        row.update({k: _round(row[k]) for k in ("seconds", "cpu_seconds", "peak_rss_mb", "clip_mb", "peak_gpu_mb")})
    settings = {**dataclasses.asdict(config), "device": device, "memory_cap_mb": round(memory_cap),
                "torch": torch.__version__, "cpu_count": _cpu_count(),
                "wall_seconds": round(time.perf_counter() - started, 1)}
    return {"model": model["description"], "settings": settings,
            "rows": [{field: row[field] for field in ROW_FIELDS} for row in rows],
            "fits": {mode: growth_summary([r for r in rows if r["mode"] == mode], key) for mode in config.modes},
            "ratios": full_frame_ratios(rows, key) if "full" in config.modes else {}, "rss_vs_length": rss}


def _round(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.4g}") if abs(value) < 1 else round(value, 3)


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

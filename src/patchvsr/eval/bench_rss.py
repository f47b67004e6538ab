"""Peak memory of `patchvsr upscale` against video length: the same command on a short and a long video.

Each run is its own `patchvsr upscale ... --stats` subprocess (so its `peak_rss_mb`, the process high-water
mark, belongs to that run alone) on a synthetic LR video (`patchvsr.io.synth`) at RSS_FPS. The runs go in
parallel: they are measured for memory, which does not depend on what else the machine does; their
`seconds` are reported for information only. Bicubic runs at QCIF (176×144, the budget size of docs/design.md); the
model runs on a smaller LR video (RSS_LR_SIZES["model"]) to keep the long run within minutes on a CPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from patchvsr.io.synth import write_test_video

RSS_FPS = 25
RSS_LR_SIZES = {"bicubic": (176, 144), "model": (32, 24)}  # (width, height) of the LR videos


def upscale_command(src: Path, dst: Path, stats: Path, model: str, scale: int, device: str) -> list[str]:
    """argv of one `patchvsr upscale` run (list form, no shell).

    Args:
        src (Path): the input video.
        dst (Path): the output video.
        stats (Path): where the run writes its `--stats` JSON.
        model (str): the --model name or folder.
        scale (int): the --scale factor.
        device (str): the --device.

    Returns:
        list[str]: the command, starting with this Python interpreter.
    """
    return [sys.executable, "-m", "patchvsr.cli", "upscale", str(src), "-o", str(dst), "--scale", str(scale),
            "--model", model, "--stats", str(stats), "--device", device, "--quiet"]


def rss_vs_length(config, device: str, model_folder: str | None, workdir: Path,
                  log: Callable[[str], None] = lambda line: None) -> dict | None:
    """Short and long video through `patchvsr upscale`, for bicubic and (config.rss_model) the model.

    Args:
        config (BenchConfig): its rss_seconds, rss_model, scale and threads.
        device (str): the --device of the runs.
        model_folder (str, optional): the model's weights folder (needed with config.rss_model).
        workdir (Path): where the videos, stats and logs go.
        log (Callable[[str], None], optional): told one line per run.

    Returns:
        dict | None: {"fps", "rows": [...], "growth": {method: {...}}}, or None when config.rss_seconds is (0, 0).
    """
    return finish_rss_runs(start_rss_runs(config, device, model_folder, workdir), log)


def start_rss_runs(config, device: str, model_folder: str | None, workdir: Path) -> list[tuple]:
    """Write the synthetic videos and start every `patchvsr upscale` run; returns the jobs to finish.

    Args:
        config (BenchConfig): its rss_seconds, rss_model, scale and threads.
        device (str): the --device of the runs.
        model_folder (str, optional): the model's weights folder (needed with config.rss_model).
        workdir (Path): where the videos, stats and logs go.

    Returns:
        list[tuple]: (label, seconds, frames, stem, process) per run; [] when config.rss_seconds is (0, 0).
    """
    if config.rss_seconds[1] == 0:
        return []
    methods = {"bicubic": "bicubic", **({"model": model_folder} if config.rss_model else {})}
    env = {**os.environ, **({"OMP_NUM_THREADS": str(config.threads)} if config.threads else {})}
    jobs = []
    for label, model in methods.items():
        for index, seconds in enumerate(config.rss_seconds):
            frames = max(1, round(seconds * RSS_FPS))
            stem = workdir / f"rss_{label}_{index}"
            src = write_test_video(stem.with_suffix(".mkv"), size=RSS_LR_SIZES[label], frames=frames, fps=RSS_FPS)
            command = upscale_command(src, stem.with_name(stem.name + "_out.mp4"), stem.with_suffix(".json"),
                                      model, config.scale, device)
            with open(stem.with_suffix(".log"), "w") as errors:
                process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=errors)
            jobs.append((label, seconds, frames, stem, process))
    return jobs


def finish_rss_runs(jobs: list[tuple], log: Callable[[str], None] = lambda line: None) -> dict | None:
    """Wait for the runs of `start_rss_runs` and collect their rows (None when there were none).

    Args:
        jobs (list[tuple]): what `start_rss_runs` returned.
        log (Callable[[str], None], optional): told one line per run.

    Returns:
        dict | None: {"fps", "rows", "growth"} (see `rss_vs_length`), or None for no jobs.
    """
    if not jobs:
        return None
    rows = [_row(label, seconds, frames, stem, process.wait())
            for label, seconds, frames, stem, process in jobs]
    for row in rows:
        log(f"upscale {row['method']} {row['video_seconds']} s video: peak RSS {row['peak_rss_mb']} MB")
    return {"fps": RSS_FPS, "rows": rows, "growth": _growth(rows)}


def _row(label: str, seconds: float, frames: int, stem: Path, returncode: int) -> dict:
    """One run's row from its stats JSON; a failed run gets its last stderr line as `error`."""
    width, height = RSS_LR_SIZES[label]
    row = {"method": label, "video_seconds": seconds, "frames": frames, "input": f"{width}x{height}",
           "output": None, "peak_rss_mb": None, "seconds": None, "error": None}
    stats = stem.with_suffix(".json")
    if returncode != 0 or not stats.is_file():
        lines = stem.with_suffix(".log").read_text().strip().splitlines()
        row["error"] = lines[-1] if lines else f"exit code {returncode}"
        return row
    data = json.loads(stats.read_text())
    row.update(output=f"{data['width']}x{data['height']}", peak_rss_mb=data["peak_rss_mb"],
               seconds=data["seconds"], frames=data["frames"])
    return row


def _growth(rows: list[dict]) -> dict:
    """Per method: peak RSS of the short and the long run, their difference and ratio."""
    growth = {}
    for label in dict.fromkeys(r["method"] for r in rows):
        short, long = (r for r in rows if r["method"] == label)
        if short["peak_rss_mb"] is None or long["peak_rss_mb"] is None:
            growth[label] = None
            continue
        growth[label] = {"short_mb": short["peak_rss_mb"], "long_mb": long["peak_rss_mb"],
                         "growth_mb": round(long["peak_rss_mb"] - short["peak_rss_mb"], 1),
                         "ratio": round(long["peak_rss_mb"] / short["peak_rss_mb"], 3)}
    return growth

"""Ray speed-up and per-clip overhead on this machine, for a random-weight "tiny" PatchVSR model.

One synthetic input; every figure is the wall time of `upscale_video` / `upscale_video_ray`
(`ray.init` start-up reported apart):
- local: one process, PyTorch on 1 thread and on all cores (intra-op threads);
- ray: a local cluster of CPUS one-core workers (cold: the first run, each worker starts and loads the
  model; the figure is the warm second run), and one of a single one-core worker: the same compute as
  local on 1 thread, so (ray_1_worker - local_1_thread) / clips is Ray's overhead per clip (scheduling,
  transfers, the clip recomputed at every task start to seed the cross-fade).
Every figure is the second of two identical runs.

    python scripts/bench_ray.py --json bench_ray.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import ray
import torch

from patchvsr.api import upscale_video
from patchvsr.distributed import RayOptions, upscale_video_ray
from patchvsr.io.synth import write_test_video
from patchvsr.models import PatchVSRModel


def tiny_model(folder: Path) -> str:
    PatchVSRModel.from_preset("tiny", seed=0).save_pretrained(folder)
    (folder / "training.json").write_text(json.dumps({"residual_std": 0.12}))
    return str(folder)


def timed(function, *args, **kwargs) -> tuple[float, dict]:
    started = time.perf_counter()
    stats = function(*args, **kwargs)
    return round(time.perf_counter() - started, 2), stats


def warm(function, *args, **kwargs) -> float:
    """Seconds of the second of two identical calls (the first warms caches, workers and kernels)."""
    function(*args, **kwargs)
    return timed(function, *args, **kwargs)[0]


def local_seconds(src: Path, dst: Path, threads: int, **options) -> float:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return warm(upscale_video, src, dst, **options)
    finally:
        torch.set_num_threads(previous)


def ray_seconds(cpus: int, src: Path, dst: Path, report: dict, **options) -> float:
    """Warm seconds of a Ray run on a fresh local cluster of `cpus` one-core workers."""
    started = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    report.setdefault("ray_init_s", round(time.perf_counter() - started, 2))
    try:
        report[f"ray_{cpus}_workers_cold_s"], stats = timed(upscale_video_ray, src, dst, **options)
        report["clips"], report[f"clips_per_task_{cpus}"] = stats["ray"]["clips"], stats["ray"]["clips_per_task"]
        return timed(upscale_video_ray, src, dst, **options)[0]
    finally:
        ray.shutdown()


def run(size: tuple[int, int], frames: int, scale: float, cpus: int) -> dict:
    with tempfile.TemporaryDirectory() as temp:
        temp = Path(temp)
        src = write_test_video(temp / "in.mkv", size=size, frames=frames)
        tiny = dict(scale=scale, model=tiny_model(temp / "tiny"), overwrite=True)
        report = {"cpus": cpus, "input": f"{size[0]}x{size[1]}x{frames}", "scale": scale,
                  "load_average_before": os.getloadavg()}
        report["local_1_thread_s"] = local_seconds(src, temp / "l.mkv", 1, **tiny)
        report[f"local_{cpus}_threads_s"] = local_seconds(src, temp / "l.mkv", cpus, **tiny)
        report[f"ray_{cpus}_workers_s"] = ray_seconds(cpus, src, temp / "r.mkv", report, **tiny)
        report["ray_1_worker_s"] = ray_seconds(1, src, temp / "r.mkv", report, **tiny)
        best_local = min(report["local_1_thread_s"], report[f"local_{cpus}_threads_s"])
        report["speedup"] = round(best_local / report[f"ray_{cpus}_workers_s"], 2)
        report["overhead_per_clip_s"] = round(
            (report["ray_1_worker_s"] - report["local_1_thread_s"]) / report["clips"], 3)
        report["load_average_after"] = os.getloadavg()
        return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="32x24", help="input WxH (default 32x24)")
    parser.add_argument("--frames", type=int, default=25)
    parser.add_argument("--scale", type=float, default=4.0)
    parser.add_argument("--cpus", type=int, default=os.cpu_count())
    parser.add_argument("--json", type=Path, help="write the report here too")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    report = run((width, height), args.frames, args.scale, args.cpus)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()

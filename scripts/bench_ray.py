"""Ray speed-up and per-clip overhead on this machine, for a random-weight "tiny" PatchVSR model.

The clip loop alone (decoded frames in memory, upscaler built beforehand, no file I/O), so only the
compute and Ray's own costs are timed; workers are warm (model loaded) and every figure is the best of
`--repeats` runs, interleaved so that load from other processes hits all variants alike:
- local: `api.upscale_clips` in one process, PyTorch on 1 thread and on all CPUS cores (intra-op threads);
- ray: `RayRunner.upscale_clips` on a local cluster of CPUS one-core workers (speed-up = best local / ray),
  and on a cluster of a single one-core worker: the same compute as local on 1 thread, so
  (ray - local_1_thread) / clips there is Ray's overhead per clip (scheduling, transfers, the clip
  recomputed at each task start to seed the cross-fade);
- bicubic in one-frame tasks on one worker: the bare cost of a task.

    python scripts/bench_ray.py --json bench_ray.json
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import tempfile
import time
from pathlib import Path

import ray
import torch

from patchvsr.api import upscale_clips
from patchvsr.distributed import RayOptions, RayRunner, UpscalerSpec
from patchvsr.io.synth import synthetic_frame
from patchvsr.models import PatchVSRModel
from patchvsr.tiling.temporal import count_clips


def tiny_model(folder: Path) -> str:
    PatchVSRModel.from_preset("tiny", seed=0).save_pretrained(folder)
    (folder / "training.json").write_text(json.dumps({"residual_std": 0.12}))
    return str(folder)


def timed(function, *args, **kwargs) -> tuple[float, dict]:
    started = time.perf_counter()
    stats = function(*args, **kwargs)
    return round(time.perf_counter() - started, 2), stats


def local_clip_loop(frames: list, upscaler, size: tuple[int, int], threads: int) -> float:
    """Seconds of `api.upscale_clips` in this process with PyTorch on `threads` threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return timed(lambda: list(upscale_clips(frames, upscaler, size)))[0]
    finally:
        torch.set_num_threads(previous)


def compare(cpus: int, frames: list, model: str, size: tuple[int, int], repeats: int, per_task=None) -> dict:
    """On a fresh local cluster of `cpus` one-core workers: the best of `repeats` interleaved runs of the
    local clip loop (1 thread and `cpus` threads) and of the Ray clip loop, after one warm-up of each."""
    spec = UpscalerSpec.create(model, "cpu")
    upscaler = spec.build()
    started = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    result = {"ray_init_s": round(time.perf_counter() - started, 2)}
    try:
        with RayRunner(RayOptions(clips_per_task=per_task)) as runner:
            layout = runner.layout(spec)
            result["clips_per_task"] = per_task = runner.clips_per_task(len(frames), layout)
            runs = {f"local_{threads}_thread{'s' * (threads > 1)}_s":
                    functools.partial(local_clip_loop, frames, upscaler, size, threads)
                    for threads in sorted({1, cpus})}
            runs |= {
                "ray_s": lambda: timed(lambda: list(runner.upscale_clips(frames, spec, layout, size, 0,
                                                                         per_task)))[0],
            }
            for run in runs.values():
                run()
            for name, run in [(name, run) for _ in range(repeats) for name, run in runs.items()]:
                result[name] = min(result.get(name, float("inf")), run())
    finally:
        ray.shutdown()
    return result


def run(size: tuple[int, int], frames: int, scale: float, cpus: int, repeats: int) -> dict:
    width, height = size
    out = (round(height * scale), round(width * scale))
    video = [synthetic_frame(i, width, height) for i in range(frames)]
    with tempfile.TemporaryDirectory() as temp:
        model = tiny_model(Path(temp) / "tiny")
        layout = UpscalerSpec.create(model, "cpu").build()
        clips = count_clips(frames, layout.clip_frames, layout.clip_overlap)
        report = {"cpus": cpus, "input": f"{width}x{height}x{frames}", "scale": scale, "clips": clips,
                  "repeats": repeats, "load_average_before": [round(v, 2) for v in os.getloadavg()]}
        report[f"{cpus}_workers"] = many = compare(cpus, video, model, out, repeats)
        report["1_worker"] = one = compare(1, video, model, out, repeats)
        report["bicubic_1_frame_tasks"] = bicubic = compare(1, video, "bicubic", out, repeats, per_task=1)
        best_local = min(many["local_1_thread_s"], many[f"local_{cpus}_threads_s"])
        report["speedup"] = round(best_local / many["ray_s"], 2)
        report["overhead_per_clip_s"] = round((one["ray_s"] - one["local_1_thread_s"]) / clips, 3)
        report["bicubic_overhead_per_task_s"] = round((bicubic["ray_s"] - bicubic["local_1_thread_s"]) / frames, 4)
        report["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
        return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="32x24", help="input WxH (default 32x24)")
    parser.add_argument("--frames", type=int, default=49)
    parser.add_argument("--scale", type=float, default=4.0)
    parser.add_argument("--cpus", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timed runs, best kept")
    parser.add_argument("--json", type=Path, help="write the report here too")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    report = run((width, height), args.frames, args.scale, args.cpus, args.repeats)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()

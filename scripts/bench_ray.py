"""Ray speed-up and per-clip overhead on this machine, for a random-weight "tiny" PatchVSR model.

All runs share one local Ray instance (`ray.init(num_cpus=CPUS)`, its start-up time reported apart) and
one synthetic input; every figure is the wall time of `upscale_video` / `upscale_video_ray`:
- local: one process, PyTorch on all cores (intra-op threads);
- ray: CPUS workers of one core each (cold: the first run, each worker loads the model; warm: again);
- ray_one_worker: one worker holding all cores (`cpus_per_task=CPUS`): same compute as `local`, so
  (ray_one_worker - local) / clips is Ray's overhead per clip (scheduling, transfers, the recomputed
  cross-fade clip at every task start);
- bicubic with one clip per task: (ray - local) / clips is the bare per-task cost.

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


def run(size: tuple[int, int], frames: int, scale: float, cpus: int) -> dict:
    with tempfile.TemporaryDirectory() as temp:
        temp = Path(temp)
        src = write_test_video(temp / "in.mkv", size=size, frames=frames)
        model = tiny_model(temp / "tiny")
        common = dict(scale=scale, model=model, overwrite=True)
        report = {"cpus": cpus, "input": f"{size[0]}x{size[1]}x{frames}", "scale": scale,
                  "load_average": os.getloadavg()}
        started = time.perf_counter()
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
        report["ray_init_s"] = round(time.perf_counter() - started, 2)
        try:
            report["local_cold_s"], _ = timed(upscale_video, src, temp / "local.mkv", **common)
            report["local_s"], _ = timed(upscale_video, src, temp / "local.mkv", **common)
            report["ray_cold_s"], ray_stats = timed(upscale_video_ray, src, temp / "r.mkv", **common)
            report["ray_warm_s"], _ = timed(upscale_video_ray, src, temp / "r.mkv", **common)
            report["clips"] = clips = ray_stats["ray"]["clips"]
            report["clips_per_task"] = ray_stats["ray"]["clips_per_task"]
            one = RayOptions(cpus_per_task=cpus)
            timed(upscale_video_ray, src, temp / "r1.mkv", ray=one, **common)  # warms the 1-worker shape
            report["ray_one_worker_s"], _ = timed(upscale_video_ray, src, temp / "r1.mkv", ray=one, **common)
            report["speedup_warm"] = round(report["local_s"] / report["ray_warm_s"], 2)
            report["speedup_cold"] = round(report["local_s"] / report["ray_cold_s"], 2)
            report["overhead_per_clip_s"] = round((report["ray_one_worker_s"] - report["local_s"]) / clips, 3)
            bicubic = dict(scale=scale, overwrite=True)
            per_clip = RayOptions(clips_per_task=1)
            timed(upscale_video, src, temp / "b.mkv", **bicubic)
            report["bicubic_local_s"], stats = timed(upscale_video, src, temp / "b.mkv", **bicubic)
            timed(upscale_video_ray, src, temp / "rb.mkv", ray=per_clip, **bicubic)
            report["bicubic_ray_s"], _ = timed(upscale_video_ray, src, temp / "rb.mkv", ray=per_clip, **bicubic)
            report["bicubic_overhead_per_task_s"] = round(
                (report["bicubic_ray_s"] - report["bicubic_local_s"]) / stats["frames"], 3)
        finally:
            ray.shutdown()
        report["torch_threads_local"] = torch.get_num_threads()
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

"""Peak memory and throughput of `patchvsr upscale` on a short clip and on one `factor` times longer.

Each run is a fresh `patchvsr upscale` process (so its peak RSS is its own) on a synthetic input; the
figures come from its `--stats` JSON. Memory must not grow with length: the ratio long/short stays ~1.

    python scripts/bench_io_memory.py                      # 640x360, 30 vs 300 frames, bicubic x4, .mp4
    python scripts/bench_io_memory.py --output-kind mkv --json bench_io.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from patchvsr.io.synth import write_test_video


def measure(source: Path, output: Path, scale: float, model: str) -> dict:
    """Stats of one `patchvsr upscale` run in its own process."""
    stats = output.with_suffix(".json")
    command = [sys.executable, "-m", "patchvsr.cli", "upscale", str(source), "-o", str(output),
               "--scale", str(scale), "--model", model, "--stats", str(stats), "--device", "cpu", "-q"]
    subprocess.run(command, check=True)
    return json.loads(stats.read_text())


def run(width: int, height: int, frames: int, factor: int, scale: float, model: str, kind: str) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        results = {}
        for name, count in (("short", frames), ("long", frames * factor)):
            source = write_test_video(folder / f"{name}.mkv", size=(width, height), frames=count)
            results[name] = measure(source, folder / f"{name}_out.{kind}", scale, model)
            (folder / f"{name}_out.{kind}").unlink()
    short, long = results["short"], results["long"]
    return {
        "input": f"{width}x{height}", "scale": scale, "model": model, "output_kind": kind,
        "short": {k: short[k] for k in ("frames", "seconds", "output_mpix_per_s", "peak_rss_mb")},
        "long": {k: long[k] for k in ("frames", "seconds", "output_mpix_per_s", "peak_rss_mb")},
        "rss_ratio_long_over_short": round(long["peak_rss_mb"] / short["peak_rss_mb"], 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--frames", type=int, default=30, help="frames of the short clip")
    parser.add_argument("--factor", type=int, default=10, help="the long clip has factor x frames")
    parser.add_argument("--scale", type=float, default=4.0)
    parser.add_argument("--model", default="bicubic")
    parser.add_argument("--output-kind", choices=("mp4", "mkv"), default="mp4")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    report = run(args.width, args.height, args.frames, args.factor, args.scale, args.model, args.output_kind)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Fusion overhead per output Mpix with a trivial (identity) model, against the cost of a real model call.

Measures one fused velocity evaluation (crop windows, accumulate weighted velocities, normalise) on a canvas
of (C, T, H, W) with an identity `denoise`, for each fusion mode, and reports milliseconds per step and per
output frame-Mpix (H * W * T pixels). For scale, it times one d=256 transformer block (4 heads, MLP x4) on
the tokens of one window (T * (h/p) * (w/p) tokens for token patch p) and multiplies by the windows per step:
a lower bound of the model's cost, since a real model stacks several such blocks.

    .venv/bin/python scripts/bench_fusion.py [--size 576x704] [--window 64] [--frames 8] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from patchvsr.tiling import FUSION_MODES, FusedVelocity, make_plan


def parse_size(text: str) -> tuple[int, int]:
    """'HxW' -> (H, W)."""
    height, width = (int(part) for part in text.lower().split("x"))
    return height, width


def best_seconds(fn, repeats: int, device: torch.device) -> float:
    """Best wall time of `repeats` calls after one warm-up call (synchronising CUDA around each call)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return min(times)


def fusion_overhead(args: argparse.Namespace, fusion: str) -> dict:
    """Seconds per fused step with an identity model, averaged over the plan's step groups."""
    plan = make_plan(args.size, (args.window, args.window), fusion)
    velocity_fn = FusedVelocity(plan, lambda windows, t, batch: windows, batch_size=args.batch)
    z = torch.randn(args.channels, args.frames, *args.size, device=args.device)
    steps = range(plan.num_groups)
    seconds = sum(best_seconds(lambda: velocity_fn(z, 0.5, k), args.repeats, args.device) for k in steps)
    seconds /= plan.num_groups
    return {"fusion": fusion, "windows_per_step": plan.windows_per_step, "seconds_per_step": seconds}


def block_seconds_per_window(args: argparse.Namespace) -> float:
    """Seconds for one d=256 transformer block forward on one window's tokens (timed on a batch)."""
    tokens = args.frames * (args.window // args.patch) ** 2
    block = torch.nn.TransformerEncoderLayer(256, 4, 1024, batch_first=True, norm_first=True)
    block = block.eval().to(args.device)
    x = torch.randn(args.batch, tokens, 256, device=args.device)
    with torch.inference_mode():
        return best_seconds(lambda: block(x), args.repeats, args.device) / args.batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=parse_size, default=(576, 704), help="canvas HxW (default 576x704)")
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--patch", type=int, default=4, help="token patch size of the reference block")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (default: torch's choice)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    auto = "cuda" if torch.cuda.is_available() else "cpu"
    args.device = torch.device(auto if args.device == "auto" else args.device)

    mpix = args.size[0] * args.size[1] * args.frames / 1e6
    block = block_seconds_per_window(args)
    rows = []
    print(f"canvas {args.channels}x{args.frames}x{args.size[0]}x{args.size[1]} ({mpix:.2f} frame-Mpix), "
          f"window {args.window}, {args.device}, threads {torch.get_num_threads()}")
    print(f"one d=256 block on one window ({args.frames * (args.window // args.patch) ** 2} tokens): "
          f"{block * 1e3:.2f} ms")
    header = ("fusion", "win/step", "ms/step", "ms/Mpix", "1-block model ms/Mpix", "ratio")
    print(f"{header[0]:9s} {header[1]:>8s} {header[2]:>8s} {header[3]:>8s} {header[4]:>22s} {header[5]:>7s}")
    for fusion in FUSION_MODES:
        row = fusion_overhead(args, fusion)
        row["ms_per_mpix"] = row["seconds_per_step"] * 1e3 / mpix
        row["block_ms_per_mpix"] = block * row["windows_per_step"] * 1e3 / mpix
        row["overhead_ratio"] = row["ms_per_mpix"] / row["block_ms_per_mpix"]
        rows.append(row)
        print(f"{fusion:9s} {row['windows_per_step']:8g} {row['seconds_per_step'] * 1e3:8.1f} "
              f"{row['ms_per_mpix']:8.1f} {row['block_ms_per_mpix']:22.1f} {row['overhead_ratio']:7.1%}")
    if args.json:
        with open(args.json, "w") as handle:
            settings = {k: str(v) if k == "device" else v for k, v in vars(args).items() if k != "json"}
            json.dump({"args": settings, "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()

"""Seconds of the shipped tiny model's `upscale_clip` on one 16-frame clip, 80x48 -> 320x192, per compute dtype.

    python scripts/bench_dtype.py                                             # this CPU as it is
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python scripts/bench_dtype.py   # as an AVX2-only CPU

Each setting is warmed up on a 4-frame clip first; the line names PyTorch's CPU capability and what
`--dtype auto` chose.
"""

from __future__ import annotations

import time

import torch

from patchvsr.methods import get_upscaler

SETTINGS = ({}, {"dtype": "bf16"}, {"dtype": "fp32"}, {"dtype": "fp32", "fusion": "none"})


def main() -> None:
    clip = torch.rand(16, 3, 48, 80, generator=torch.Generator().manual_seed(0))
    size = (192, 320)
    for options in SETTINGS:
        upscaler = get_upscaler("tiny", device="cpu", **options)
        upscaler.upscale_clip(clip[:4], size, 0)
        started = time.perf_counter()
        upscaler.upscale_clip(clip, size, 0)
        seconds = time.perf_counter() - started
        label = ", ".join(f"{k}={v}" for k, v in options.items()) or "default (dtype auto)"
        print(f"{torch.backends.cpu.get_cpu_capability()}  {label:<24} -> {upscaler.describe()['dtype']}: "
              f"{seconds:.2f} s, {16 * size[0] * size[1] / 1e6 / seconds:.3f} output Mpix/s", flush=True)


if __name__ == "__main__":
    main()

"""Option values shared across layers (the API, the methods and the command line), in one light module.

MODEL_OPTIONS: the options only diffusion models take, as (name, type, help); the CLI spells them
`--clip-frames` etc., `get_upscaler` and method specs ("tiny:steps=4") take the names.
"""

from __future__ import annotations

MODEL_OPTIONS: tuple[tuple[str, type, str], ...] = (
    ("steps", int, "sampling steps"),
    ("fusion", str, "how windows are joined: auto (default: band with one step, weighted with more), band "
                    "(narrow blended overlap), weighted (the paper's joint modulation, ~3x the cost), average, "
                    "none, shifted"),
    ("seed", int, "random seed (each clip derives its own from it)"),
    ("window", int, "window size in pixels the model sees"),
    ("clip_frames", int, "frames per clip (tiny: 16; memory grows with it)"),
    ("batch", int, "windows per model call (default 16 on CPU, 256 on CUDA)"),
    ("t0", float, "start time < 1: begin from the noised upsampled input instead of pure noise"),
    ("dtype", str, "compute dtype: auto (default: bf16 where the device runs it natively, i.e. CUDA, or CPUs "
                   "with AMX or AVX512-BF16; else fp32), fp32, bf16, fp16"),
    ("temporal_radius", int, "average the added detail over N motion-aligned neighbour frames on each side "
                             "within a clip (0 = off; default 8)"),
    ("degradation", str, "models trained on real-world inputs: how degraded the input is, auto (default: "
                         "estimated from the picture) or 0-1 (0 = clean, about 0.7 = H.264 CRF 30)"),
    ("consistency", str, "weight 0-1 of the back-projection that makes the output downscale to the input, or "
                         "auto (default: full on clean input, off from degradation 0.5 on)"),
)
MODEL_OPTION_TYPES = {name: kind for name, kind, _ in MODEL_OPTIONS}
MODEL_OPTION_NAMES = tuple(MODEL_OPTION_TYPES)


def flag(name: str) -> str:
    """The command-line spelling of an option name: clip_frames -> --clip-frames.

    Args:
        name (str): an option name with underscores, e.g. "clip_frames".

    Returns:
        str: the flag, e.g. "--clip-frames".
    """
    return "--" + name.replace("_", "-")

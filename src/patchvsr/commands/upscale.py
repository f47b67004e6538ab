"""`patchvsr upscale INPUT -o OUTPUT [...]`: parses options and calls `patchvsr.api.upscale_video`."""

from __future__ import annotations

import argparse
import functools
from fractions import Fraction

from patchvsr.devices import DEVICE_HELP, device_arg

# (flag, type, help) of the options only diffusion models take; passed on as model_options when given
MODEL_FLAGS = (
    ("--steps", int, "sampling steps"),
    ("--fusion", str, "how windows are joined: auto (default: band with one step, weighted with more), band "
                      "(narrow blended overlap), weighted (the paper's joint modulation, ~3x the cost), average, "
                      "none, shifted"),
    ("--seed", int, "random seed (each clip derives its own from it)"),
    ("--window", int, "window size in pixels the model sees"),
    ("--clip-frames", int, "frames per clip (tiny: 16; memory grows with it)"),
    ("--batch", int, "windows per model call (default 16 on CPU, 256 on CUDA)"),
    ("--t0", float, "start time < 1: begin from the noised upsampled input instead of pure noise"),
    ("--dtype", str, "compute dtype: auto (default: bf16 where the device runs it natively, i.e. CUDA, or CPUs "
                     "with AMX or AVX512-BF16; else fp32), fp32, bf16, fp16"),
    ("--temporal-radius", int, "average the added detail over N motion-aligned neighbour frames on each side "
                               "within a clip (0 = off; default 8)"),
    ("--degradation", str, "models trained on real-world inputs: how degraded the input is, auto (default: "
                           "estimated from the picture) or 0-1 (0 = clean, about 0.7 = H.264 CRF 30)"),
)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "upscale", help="upscale a video file or a folder of PNG frames",
        description="Upscale a video (any file FFmpeg decodes) or a folder of numbered PNG frames. "
                    "OUTPUT: .mkv = lossless FFV1, .mp4 = H.264, a folder = PNG frames.")
    parser.add_argument("input", metavar="INPUT", help="video file or folder of numbered PNG frames")
    parser.add_argument("-o", "--output", required=True, metavar="OUTPUT", help=".mkv, .mp4 or a folder")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--scale", type=float, metavar="K", help="scale factor > 1 for both axes (default 4)")
    size.add_argument("--size", metavar="WxH",
                      help="output size; each axis is scaled on its own, so another aspect ratio stretches")
    parser.add_argument("--model", default=None, metavar="NAME",
                        help="tiny (the embedded PatchVSR model, default), bicubic, lanczos, "
                             "realesrgan-animevideov3, realesrgan-x4plus (after `patchvsr fetch realesrgan`), or "
                             "a trained model's folder; $PATCHVSR_MODEL changes the default")
    parser.add_argument("--crf", type=int, default=17, help="H.264 quality for .mp4, 0-51 (default 17)")
    parser.add_argument("--fps", type=Fraction, metavar="RATE",
                        help="frame rate of a PNG-folder input, e.g. 25 or 30000/1001 (default 25)")
    parser.add_argument("--stats", metavar="STATS.json", help="write run statistics as JSON")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run of this output")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing output and discard an interrupted run")
    parser.add_argument("--device", default="auto", type=device_arg, help=DEVICE_HELP)
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    parser.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                        help="spread the clips over a Ray cluster (default: RAY_ADDRESS, a local `ray start` "
                             "cluster, else a new local one); needs pip install 'patchvsr[ray]'")
    models = parser.add_argument_group("diffusion model options (not for bicubic/lanczos)")
    for flag, kind, text in MODEL_FLAGS:
        models.add_argument(flag, type=kind, default=None, help=text)
    parser.set_defaults(func=run)


def model_options(args: argparse.Namespace) -> dict:
    """The model options given on the command line (None for those left out)."""
    options = {flag[2:].replace("-", "_"): None for flag, _, _ in MODEL_FLAGS}
    for name in options:
        options[name] = getattr(args, name)
    return options


def run(args: argparse.Namespace) -> int:
    from patchvsr.api import upscale_video
    from patchvsr.progress import ProgressReporter, configure_logging, stderr_console

    console = stderr_console()
    configure_logging(console, args.quiet)
    if args.ray is not None:
        from patchvsr.distributed import RayOptions, upscale_video_ray

        upscale_video = functools.partial(upscale_video_ray, ray=RayOptions(address=args.ray or None))
    with ProgressReporter(console) as progress:
        upscale_video(args.input, args.output, scale=args.scale, size=args.size, model=args.model,
                      crf=args.crf, fps=args.fps, stats=args.stats, resume=args.resume,
                      overwrite=args.overwrite, device=args.device, progress=progress, **model_options(args))
    return 0

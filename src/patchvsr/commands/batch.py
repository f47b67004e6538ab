"""`patchvsr batch INPUT... -o OUTDIR [--format mp4|mkv|png] [--ray [ADDRESS]] [...]`: many inputs, one folder.

Takes the options of `patchvsr upscale` (same meaning, applied to every input) and calls
`patchvsr.batch.upscale_batch`.
"""

from __future__ import annotations

import argparse
from fractions import Fraction

from patchvsr.commands.upscale import MODEL_FLAGS, model_options
from patchvsr.devices import DEVICE_HELP, device_arg


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "batch", help="upscale many videos into one folder, locally or on a Ray cluster",
        description="Upscale every INPUT into OUTDIR/<name>.<format>. An input that fails is reported and "
                    "skipped; the exit code is 2 if any failed.")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="video files or folders of numbered PNGs")
    parser.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder (created)")
    parser.add_argument("--format", default="mp4", choices=("mp4", "mkv", "png"),
                        help="mp4 = H.264, mkv = lossless FFV1, png = a folder of frames per input (default mp4)")
    parser.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                        help="run on a Ray cluster (default: RAY_ADDRESS, a local `ray start` cluster, else a "
                             "new local one); needs pip install 'patchvsr[ray]'")
    parser.add_argument("--jobs", type=int, metavar="N", help="inputs processed at once (default 1, 2 with --ray)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--scale", type=float, metavar="K", help="scale factor > 1 for both axes (default 4)")
    size.add_argument("--size", metavar="WxH", help="output size of every input")
    parser.add_argument("--model", default=None, metavar="NAME",
                        help="tiny (the embedded PatchVSR model, default), bicubic, lanczos, or a trained "
                             "model's folder; $PATCHVSR_MODEL changes the default")
    parser.add_argument("--crf", type=int, default=17, help="H.264 quality for mp4, 0-51 (default 17)")
    parser.add_argument("--fps", type=Fraction, metavar="RATE", help="frame rate of PNG-folder inputs (default 25)")
    parser.add_argument("--stats", metavar="STATS.json", help="write every input's statistics as JSON")
    parser.add_argument("--resume", action="store_true", help="continue interrupted runs of these outputs")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument("--device", default="auto", type=device_arg, help=DEVICE_HELP)
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    models = parser.add_argument_group("diffusion model options (not for bicubic/lanczos)")
    for flag, kind, text in MODEL_FLAGS:
        models.add_argument(flag, type=kind, default=None, help=text)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from patchvsr.batch import upscale_batch
    from patchvsr.progress import configure_logging, stderr_console

    configure_logging(stderr_console(), args.quiet)
    ray = None
    if args.ray is not None:
        from patchvsr.distributed import RayOptions

        ray = RayOptions(address=args.ray or None)
    upscale_batch(args.inputs, args.output, fmt=args.format, ray=ray, jobs=args.jobs, stats=args.stats,
                  scale=args.scale, size=args.size, model=args.model, crf=args.crf, fps=args.fps,
                  resume=args.resume, overwrite=args.overwrite, device=args.device, **model_options(args))
    return 0

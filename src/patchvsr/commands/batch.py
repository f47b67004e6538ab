"""`patchvsr batch INPUT... -o OUTDIR [--format mp4|mkv|mov|webm|png] [--ray [ADDRESS]] [...]`: many inputs, one
folder.

Takes the options of `patchvsr upscale` (same meaning, applied to every input) and calls
`patchvsr.batch.upscale_batch`.
"""

from __future__ import annotations

import argparse

from patchvsr.commands.common import output_options, model_options, upscale_options
from patchvsr.io.target import FORMATS


def add_parser(subparsers) -> None:
    """Register `batch` on the `patchvsr` subparsers.

    Args:
        subparsers (argparse._SubParsersAction): the `patchvsr` subparsers (`ArgumentParser.add_subparsers()`).
    """
    parser = subparsers.add_parser(
        "batch", parents=[upscale_options()],
        help="upscale many videos into one folder, locally or on a Ray cluster",
        description="Upscale every INPUT into OUTDIR/<name>.<format>. An input that fails is reported and "
                    "skipped; the exit code is 2 if any failed.")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="video files or folders of numbered PNGs")
    parser.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder (created)")
    parser.add_argument("--format", default="mp4", choices=FORMATS,
                        help="mp4 = H.264, mkv = lossless FFV1, mov = ProRes, webm = VP9 (--codec picks another), "
                             "png = a folder of frames per input (default mp4)")
    parser.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                        help="run on a Ray cluster (default: RAY_ADDRESS, a local `ray start` cluster, else a "
                             "new local one); needs pip install 'patchvsr[ray]'")
    parser.add_argument("--jobs", type=int, metavar="N", help="inputs processed at once (default 1, 2 with --ray)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run `patchvsr batch`: every input through `patchvsr.batch.upscale_batch`.

    Args:
        args (argparse.Namespace): the parsed command line.

    Returns:
        int: the exit code, 0.
    """
    from patchvsr.batch import upscale_batch
    from patchvsr.progress import configure_logging, stderr_console

    configure_logging(stderr_console(), args.quiet)
    ray = None
    if args.ray is not None:
        from patchvsr.distributed import RayOptions

        ray = RayOptions(address=args.ray or None)
    upscale_batch(args.inputs, args.output, fmt=args.format, ray=ray, jobs=args.jobs, stats=args.stats,
                  scale=args.scale, size=args.size, model=args.model, fps=args.fps, **output_options(args),
                  resume=args.resume, overwrite=args.overwrite, device=args.device, **model_options(args))
    return 0

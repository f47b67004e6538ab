"""`patchvsr upscale INPUT -o OUTPUT [...]`: parses options and calls `patchvsr.api.upscale_video`."""

from __future__ import annotations

import argparse
import functools

from patchvsr.commands.common import output_options, model_options, upscale_options


def add_parser(subparsers) -> None:
    """Register `upscale` on the `patchvsr` subparsers.

    Args:
        subparsers (argparse._SubParsersAction): the `patchvsr` subparsers (`ArgumentParser.add_subparsers()`).
    """
    parser = subparsers.add_parser(
        "upscale", parents=[upscale_options()], help="upscale a video file or a folder of PNG frames",
        description="Upscale a video (any file FFmpeg decodes) or a folder of numbered PNG frames. "
                    "OUTPUT: .mkv = lossless FFV1, .mp4 = H.264, .mov = ProRes, .webm = VP9 (--codec picks "
                    "another), a folder = PNG frames.")
    parser.add_argument("input", metavar="INPUT", help="video file or folder of numbered PNG frames")
    parser.add_argument("-o", "--output", required=True, metavar="OUTPUT", help=".mkv, .mp4, .mov, .webm or a folder")
    parser.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                        help="spread the clips over a Ray cluster (default: RAY_ADDRESS, a local `ray start` "
                             "cluster, else a new local one); needs pip install 'patchvsr[ray]'")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run `patchvsr upscale` through `patchvsr.api.upscale_video` (or its Ray version).

    Args:
        args (argparse.Namespace): the parsed command line.

    Returns:
        int: the exit code, 0.
    """
    from patchvsr.api import upscale_video
    from patchvsr.progress import ProgressReporter, configure_logging, stderr_console

    console = stderr_console()
    configure_logging(console, args.quiet)
    if args.ray is not None:
        from patchvsr.distributed import RayOptions, upscale_video_ray

        upscale_video = functools.partial(upscale_video_ray, ray=RayOptions(address=args.ray or None))
    with ProgressReporter(console) as progress:
        upscale_video(args.input, args.output, scale=args.scale, size=args.size, model=args.model,
                      fps=args.fps, stats=args.stats, **output_options(args), resume=args.resume,
                      overwrite=args.overwrite, device=args.device, progress=progress, **model_options(args))
    return 0

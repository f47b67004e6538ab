"""`patchvsr preview INPUT [--at TIME] [--model ...] -o cmp.png`: one moment, input / bicubic / model side by side."""

from __future__ import annotations

import argparse

from patchvsr.commands.common import MODEL_HELP, add_model_options, model_options
from patchvsr.devices import DEVICE_HELP, device_arg


def add_parser(subparsers) -> None:
    """Register `preview` on the `patchvsr` subparsers.

    Args:
        subparsers (argparse._SubParsersAction): the `patchvsr` subparsers (`ArgumentParser.add_subparsers()`).
    """
    parser = subparsers.add_parser(
        "preview", help="see in seconds what a model does to one moment of a video",
        description="Write a PNG of one crop of the frame at --at: the input (enlarged by pixel repetition), "
                    "bicubic and the model side by side, and print the estimated time of the whole job.")
    parser.add_argument("input", metavar="INPUT", help="video file or folder of numbered PNG frames")
    parser.add_argument("-o", "--output", required=True, metavar="CMP.png", help="the comparison image")
    parser.add_argument("--at", metavar="TIME", help="the moment: seconds or [H:]MM:SS[.fff] (default: the middle)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--scale", type=float, metavar="K", help="scale factor > 1 (default 4)")
    size.add_argument("--size", metavar="WxH", help="output size of the whole video")
    parser.add_argument("--model", default=None, metavar="NAME", help=MODEL_HELP)
    parser.add_argument("--crop", type=int, default=96, metavar="PX", help="side of the crop in input pixels "
                                                                         "(default 96)")
    parser.add_argument("--device", default="auto", type=device_arg, help=DEVICE_HELP)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing image")
    add_model_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run `patchvsr preview`: write the comparison image and print its summary.

    Args:
        args (argparse.Namespace): the parsed command line.

    Returns:
        int: the exit code, 0.
    """
    from patchvsr.preview import describe, preview  # noqa: PLC0415 - keep `patchvsr --help` fast

    result = preview(args.input, args.output, at=args.at, model=args.model, scale=args.scale, size=args.size,
                     crop=args.crop, device=args.device, overwrite=args.overwrite, **model_options(args))
    print(describe(result))
    return 0

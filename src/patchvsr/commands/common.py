"""The options `patchvsr upscale` and `patchvsr batch` share, defined once as an argparse parent parser."""

from __future__ import annotations

import argparse
from fractions import Fraction

from patchvsr.devices import DEVICE_HELP, device_arg
from patchvsr.io.codecs import CODECS, PRORES_PROFILES
from patchvsr.options import MODEL_OPTIONS, flag

MODEL_HELP = ("lite (the embedded PatchVSR model, default), tiny (the earlier, 2x slower one), bicubic, lanczos, "
              "realesrgan-animevideov3, realesrgan-x4plus (after `patchvsr fetch realesrgan`), or a trained model's "
              "folder; $PATCHVSR_MODEL changes the default")


def upscale_options() -> argparse.ArgumentParser:
    """A parent parser (`parents=[...]`) with the size, model, output, run and model options.

    Returns:
        argparse.ArgumentParser: without help, for `add_parser(..., parents=[upscale_options()])`.
    """
    parser = argparse.ArgumentParser(add_help=False)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--scale", type=float, metavar="K", help="scale factor > 1 for both axes (default 4)")
    size.add_argument("--size", metavar="WxH",
                      help="output size; each axis is scaled on its own, so another aspect ratio stretches")
    parser.add_argument("--model", default=None, metavar="NAME", help=MODEL_HELP)
    codecs = parser.add_argument_group("video codec (defaults: .mkv FFV1, .mp4 H.264, .mov ProRes, .webm VP9)")
    codecs.add_argument("--codec", choices=tuple(CODECS), default=None,
                        help="the video codec: " + ", ".join(f"{c.name} ({c.label}: .{', .'.join(c.containers)})"
                                                              for c in CODECS.values()))
    codecs.add_argument("--crf", type=int, default=None,
                        help="quality, lower is better: " + ", ".join(
                            f"{c.name} {c.crf[0]}-{c.crf[1]} (default {c.crf[2]})" for c in CODECS.values() if c.crf))
    codecs.add_argument("--preset", default=None,
                        help="speed/size trade-off: x264/x265 names (default fast), AV1 0-13 (8), VP9 0-8 (4); "
                             f"ProRes profile {'|'.join(PRORES_PROFILES)} (default hq)")
    codecs.add_argument("--pix-fmt", default=None, metavar="FMT",
                        help="pixel format, e.g. yuv444p or yuv420p10le (default: 4:2:0, 4:4:4 for odd sizes; "
                             "ProRes 4:2:2 10-bit; FFV1 RGB)")
    parser.add_argument("--fps", type=Fraction, metavar="RATE",
                        help="frame rate of PNG-folder inputs, e.g. 25 or 30000/1001 (default 25)")
    parser.add_argument("--stats", metavar="STATS.json", help="write run statistics as JSON")
    parser.add_argument("--resume", action="store_true", help="continue interrupted runs of these outputs")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing outputs and discard interrupted runs")
    parser.add_argument("--device", default="auto", type=device_arg, help=DEVICE_HELP)
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    part = parser.add_argument_group("part of the video (audio, subtitles and chapters are cut to match)")
    part.add_argument("--start", metavar="TIME", help="start at this time: seconds or [H:]MM:SS[.fff] (default 0)")
    part.add_argument("--duration", metavar="TIME", help="upscale this long (default: to the end)")
    part.add_argument("--frames", metavar="A:B", help="frames A to B-1, counted from 0 (instead of --start)")
    add_model_options(parser)
    return parser


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """The diffusion model options (`patchvsr.options.MODEL_OPTIONS`), as a group of `parser`.

    Args:
        parser (argparse.ArgumentParser): the parser to add the group to.
    """
    models = parser.add_argument_group("diffusion model options (not for bicubic/lanczos/realesrgan)")
    for name, kind, text in MODEL_OPTIONS:
        models.add_argument(flag(name), type=kind, default=None, help=text)


def output_options(args: argparse.Namespace) -> dict:
    """The codec and part options given on the command line, as `upscale_video` takes them.

    Args:
        args (argparse.Namespace): the parsed command line.

    Returns:
        dict: codec, crf, preset, pix_fmt, start, duration, frames (None for those left out).
    """
    return {name: getattr(args, name) for name in ("codec", "crf", "preset", "pix_fmt", "start", "duration",
                                                     "frames")}


def model_options(args: argparse.Namespace) -> dict:
    """The model options given on the command line (None for those left out).

    Args:
        args (argparse.Namespace): the parsed command line.

    Returns:
        dict: option name (MODEL_OPTIONS) -> value or None.
    """
    return {name: getattr(args, name) for name, _, _ in MODEL_OPTIONS}

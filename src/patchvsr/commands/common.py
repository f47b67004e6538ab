"""The options `patchvsr upscale` and `patchvsr batch` share, defined once as an argparse parent parser."""

from __future__ import annotations

import argparse
from fractions import Fraction

from patchvsr.devices import DEVICE_HELP, device_arg
from patchvsr.options import DEFAULT_CRF, MODEL_OPTIONS, flag

MODEL_HELP = ("tiny (the embedded PatchVSR model, default), bicubic, lanczos, realesrgan-animevideov3, "
              "realesrgan-x4plus (after `patchvsr fetch realesrgan`), or a trained model's folder; "
              "$PATCHVSR_MODEL changes the default")


def upscale_options() -> argparse.ArgumentParser:
    """A parent parser (`parents=[...]`) with the size, model, output, run and model options."""
    parser = argparse.ArgumentParser(add_help=False)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--scale", type=float, metavar="K", help="scale factor > 1 for both axes (default 4)")
    size.add_argument("--size", metavar="WxH",
                      help="output size; each axis is scaled on its own, so another aspect ratio stretches")
    parser.add_argument("--model", default=None, metavar="NAME", help=MODEL_HELP)
    parser.add_argument("--crf", type=int, default=DEFAULT_CRF,
                        help=f"H.264 quality of .mp4 outputs, 0-51 (default {DEFAULT_CRF})")
    parser.add_argument("--fps", type=Fraction, metavar="RATE",
                        help="frame rate of PNG-folder inputs, e.g. 25 or 30000/1001 (default 25)")
    parser.add_argument("--stats", metavar="STATS.json", help="write run statistics as JSON")
    parser.add_argument("--resume", action="store_true", help="continue interrupted runs of these outputs")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing outputs and discard interrupted runs")
    parser.add_argument("--device", default="auto", type=device_arg, help=DEVICE_HELP)
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    models = parser.add_argument_group("diffusion model options (not for bicubic/lanczos/realesrgan)")
    for name, kind, text in MODEL_OPTIONS:
        models.add_argument(flag(name), type=kind, default=None, help=text)
    return parser


def model_options(args: argparse.Namespace) -> dict:
    """The model options given on the command line (None for those left out)."""
    return {name: getattr(args, name) for name, _, _ in MODEL_OPTIONS}

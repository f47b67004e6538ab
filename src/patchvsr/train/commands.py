"""`patchvsr data` and `patchvsr train`: argument parsing only; the work lives in data.py and loop.py."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import sys
from pathlib import Path

from patchvsr.errors import OptionError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `data` (and `train` when the training loop is importable)."""
    data = subparsers.add_parser("data", help="fetch photos and synthesise training clips",
                                 description="Fetch the training photos (Debian wallpaper packages + "
                                             "scikit-image images) and render HR clips into DIR/clips.")
    data.add_argument("--out", type=Path, default=Path("data"), help="output folder (default: data)")
    data.add_argument("--clips", type=int, default=2048, help="training clips (default: 2048)")
    data.add_argument("--val-clips", type=int, default=64, help="validation clips (default: 64)")
    data.add_argument("--frames", type=int, default=8, help="frames per clip (default: 8)")
    data.add_argument("--size", type=int, default=192, help="clip side in pixels (default: 192)")
    data.add_argument("--seed", type=int, default=0)
    data.add_argument("--raw", type=Path, default=None,
                      help="use photos already unpacked in this folder instead of fetching packages")
    data.set_defaults(func=run_data)
    if importlib.util.find_spec("patchvsr.train.loop") is not None:  # the training loop may come later
        importlib.import_module("patchvsr.train.loop").add_parser(subparsers)


def run_data(args: argparse.Namespace) -> int:
    from patchvsr.train import data  # noqa: PLC0415 - keep `patchvsr --help` fast

    try:
        clip_config = dataclasses.replace(data.DataConfig().clip, frames=args.frames, size=args.size)
        config = data.DataConfig(clips=args.clips, val_clips=args.val_clips, seed=args.seed, clip=clip_config)
    except ValueError as err:
        raise OptionError(str(err)) from None
    manifest = data.prepare_data(args.out, config, raw_dir=args.raw,
                                 log=lambda line: print(line, file=sys.stderr, flush=True))
    clip_bytes = sum(path.stat().st_size for path in (args.out / "clips").glob("*.npy"))
    used = sum(1 for photo in manifest["photos"] if photo["weight"] > 0)
    print(f"{len(manifest['clips']['train'])} train + {len(manifest['clips']['val'])} val clips of "
          f"{args.frames}x{args.size}x{args.size} from {used}/{len(manifest['photos'])} photos, "
          f"{clip_bytes / 1e6:.0f} MB in {args.out / 'clips'}, prepared in {manifest['seconds']:.0f} s")
    return 0

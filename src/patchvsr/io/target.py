"""Where the output goes and how large it is: the checks done before any work starts.

Limits: an output side is at most MAX_SIDE pixels and a frame at most MAX_PIXELS (8192 × 8192 = 67 Mpix,
twice 8K UHD); larger requests are refused as absurd.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from patchvsr.errors import OptionError, OutputError
from patchvsr.io.codecs import CONTAINERS
from patchvsr.sizes import WH

MAX_SIDE = 16384
MAX_PIXELS = 8192 * 8192
DEFAULT_SCALE = 4.0
FORMATS = (*CONTAINERS, "png")  # output kinds: the containers, and a folder of PNG frames
VIDEO_SUFFIXES = tuple(f".{container}" for container in CONTAINERS)
FORMATS_HELP = ".mkv (lossless FFV1), .mp4 (H.264), .mov (ProRes), .webm (VP9; --codec picks another)"
SIZE_PATTERN = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$")


def output_kind(output: str | Path) -> str:
    """`mkv`, `mp4`, `mov`, `webm` or `png` (a folder of frames: an existing folder, or a path ending in `/`).

    A name without a suffix is refused rather than guessed: `-o out` meant as `out.mp4` must not quietly
    become a folder of PNG frames.

    Args:
        output (str or Path): the output path.

    Returns:
        str: the output kind.

    Raises:
        OptionError: for a name without a suffix, or an unsupported suffix.
    """
    path = Path(output)
    if path.is_dir() or str(output).endswith(("/", os.sep)):
        return "png"
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return path.suffix.lower()[1:]
    if not path.suffix:
        raise OptionError(f"{path}: no output format: add {FORMATS_HELP}, or end it with / for a folder of "
                          "PNG frames")
    raise OptionError(f"{path}: unsupported output format {path.suffix!r}: use {FORMATS_HELP}, or a folder "
                      "(PNG frames; a path ending in /)")


def parse_size(size: str | WH) -> WH:
    """`"WxH"` or (width, height) -> (width, height), both positive integers.

    Args:
        size (str or WH): "WxH" (x, X or ×, blanks allowed) or (width, height).

    Returns:
        WH: (width, height), each >= 1.

    Raises:
        OptionError: for a string of another form, or a side below 1.
    """
    if isinstance(size, str):
        match = SIZE_PATTERN.match(size)
        if match is None:
            raise OptionError(f"--size must look like 1920x1080, got {size!r}")
        size = int(match.group(1)), int(match.group(2))
    width, height = size
    if width < 1 or height < 1:
        raise OptionError(f"--size must be positive, got {width}x{height}")
    return int(width), int(height)


def output_size(width: int, height: int, scale: float | None = None,
                size: str | WH | None = None) -> WH:
    """Output (width, height) for an input of width × height.

    Both are checked against MAX_SIDE and MAX_PIXELS.

    Args:
        width (int): the input's width in pixels.
        height (int): the input's height in pixels.
        scale (float, *optional*): factor K (any real > 1, default 4) multiplying both sides, rounded to the
            nearest pixel.
        size (str or WH, *optional*): "WxH" or (width, height) instead of `scale`, each axis scaled on its own
            (a different aspect ratio stretches the picture); may not shrink either axis.

    Returns:
        WH: (out_w, out_h) in pixels.

    Raises:
        OptionError: for both `scale` and `size`, a scale <= 1, a size smaller than the input on an axis or
            equal to it, or an output over the limits.
    """
    if scale is not None and size is not None:
        raise OptionError("--scale and --size exclude each other; give one")
    if size is not None:
        out_w, out_h = parse_size(size)
        if out_w < width or out_h < height:
            raise OptionError(f"--size {out_w}x{out_h} is smaller than the input {width}x{height} on an "
                              "axis; patchvsr only enlarges")
    else:
        scale = DEFAULT_SCALE if scale is None else float(scale)
        if not math.isfinite(scale) or scale <= 1:
            raise OptionError(f"--scale must be a number > 1, got {scale:g}")
        out_w, out_h = _round(width * scale), _round(height * scale)
    if (out_w, out_h) == (width, height):
        raise OptionError(f"output {out_w}x{out_h} is no larger than the input {width}x{height}")
    if max(out_w, out_h) > MAX_SIDE or out_w * out_h > MAX_PIXELS:
        raise OptionError(f"output {out_w}x{out_h} exceeds the limit of {MAX_SIDE} px per side and "
                          f"{MAX_PIXELS / 1e6:.1f} Mpix per frame")
    return out_w, out_h


def _round(value: float) -> int:
    return max(1, math.floor(value + 0.5))


def check_output(src: Path, dst: Path, kind: str, overwrite: bool) -> None:
    """Refuse an output that is the input, lies in a missing folder, or exists (unless `overwrite`).

    Args:
        src (Path): the input.
        dst (Path): the output.
        kind (str): the output kind (`output_kind`): mkv, mp4, mov, webm or png.
        overwrite (bool): an existing output may be replaced (a folder only if it holds PNG files only).

    Raises:
        OutputError: if the output may not be written there.
    """
    if _same_path(src, dst):
        raise OutputError(f"{dst}: output is the input; choose another output path")
    parent = dst.parent
    if not parent.is_dir():
        raise OutputError(f"{parent}: output folder does not exist")
    if not dst.exists() and not dst.is_symlink():
        return
    if kind == "png" and dst.is_dir() and not any(dst.iterdir()):
        return  # an empty folder made for the frames
    if not overwrite:
        raise OutputError(f"{dst}: already exists; pass --overwrite to replace it")
    if kind == "png" and not dst.is_dir():
        raise OutputError(f"{dst}: exists and is not a folder; a folder output cannot replace it")
    if kind != "png" and dst.is_dir():
        raise OutputError(f"{dst}: is a folder; a video file cannot replace it")
    if kind == "png" and any(not f.is_file() or f.suffix.lower() != ".png" for f in dst.iterdir()):
        raise OutputError(f"{dst}: holds more than PNG files; --overwrite only replaces a folder of frames")


def _same_path(src: Path, dst: Path) -> bool:
    if src.resolve() == dst.resolve():
        return True
    try:
        return dst.exists() and os.path.samefile(src, dst)
    except OSError:
        return False

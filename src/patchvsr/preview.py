"""`patchvsr preview`: what a model will do to one moment of a video, in seconds, before the whole job.

The frame at `--at` (default: the middle) is decoded (the reader seeks there), a square crop of it (the most
textured of a 3×3 grid, `crop` input pixels) is upscaled on its own by bicubic and by the chosen model, and a
PNG shows three panels side by side: the input enlarged by pixel repetition, bicubic, the model. The crop
is upscaled alone, so the model's global guidance sees the crop rather than the whole frame: the full run
can differ slightly. The estimated time of the full job on this machine comes with it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from patchvsr.api import duration, quantize
from patchvsr.errors import OptionError, OutputError
from patchvsr.eval.evaluate import detail_box
from patchvsr.io.probe import VideoInfo, probe
from patchvsr.io.reader import read_frames
from patchvsr.io.span import Span
from patchvsr.io.target import output_size
from patchvsr.methods import get_upscaler
from patchvsr.sizes import HW

log = logging.getLogger("patchvsr")

DEFAULT_CROP = 96
LABEL_HEIGHT = 18
GAP = 8


@dataclass(frozen=True)
class Preview:
    """What `preview` wrote and measured: the PNG, the moment shown (seconds), the crop box in input pixels
    (left, top, side), the model's seconds on the crop, and the estimated seconds of the full job."""

    path: Path
    at: float
    box: tuple[int, int, int]
    model: str
    crop_seconds: float
    job_seconds: float


def preview(src: str | Path, dst: str | Path, *, at: str | float | None = None, model: str | None = None,
            scale: float | None = None, size: str | None = None, crop: int = DEFAULT_CROP, device: str = "auto",
            overwrite: bool = False, **model_options) -> Preview:
    """Write the comparison PNG `dst` for the moment `at` of `src` (see the module docstring).

    Args:
        src (str or Path): the input video or PNG folder.
        dst (str or Path): the PNG to write (its folder must exist).
        at (str or float, *optional*): the moment, seconds or [H:]MM:SS[.fff] (default: the middle).
        model (str, *optional*): a model name or folder (None: the default model).
        scale (float, *optional*): factor K > 1 for both axes (default 4).
        size (str, *optional*): "WxH" output size instead of `scale`.
        crop (int, *optional*, defaults to 96): side of the square crop in input pixels, >= 8.
        device (str, *optional*, defaults to "auto"): auto, cpu, cuda or cuda:N.
        overwrite (bool, *optional*, defaults to False): replace an existing `dst`.
        model_options: the model's options (`patchvsr.options.MODEL_OPTIONS`).

    Returns:
        Preview: the PNG's path, the moment shown, the crop box, the model's crop time and the job's estimate.

    Raises:
        OptionError: for a `dst` that is no .png, a crop below 8, or a bad option.
        OutputError: for a `dst` that exists (without `overwrite`) or lies in a missing folder.
        InputError: for an input that cannot be read as a video.
    """
    dst = Path(dst)
    if dst.suffix.lower() != ".png":
        raise OptionError(f"{dst}: the preview is a PNG image; name it .png")
    if dst.exists() and not overwrite:
        raise OutputError(f"{dst}: already exists; pass --overwrite to replace it")
    if not dst.parent.is_dir():
        raise OutputError(f"{dst.parent}: output folder does not exist")
    if crop < 8:
        raise OptionError(f"--crop must be at least 8 input pixels, got {crop}")
    whole = probe(src)
    width, height = output_size(whole.width, whole.height, scale, size)
    moment = whole.frames / 2 / whole.fps if at is None else at
    info = probe(src, span=Span.from_options(start=moment))
    frame = next(iter(read_frames(info)))
    factor_y, factor_x = height / whole.height, width / whole.width
    top, left, side = detail_box(frame.rgb, crop, 1)
    out_side = (round(side * factor_y), round(side * factor_x))
    low = torch.from_numpy(frame.rgb[top:top + side, left:left + side]).permute(2, 0, 1)[None].float() / 255
    upscaler = get_upscaler(model, device=device, **model_options)
    bicubic = get_upscaler("bicubic", device="cpu").upscale_clip(low, out_side, 0)
    started = time.perf_counter()
    upscaled = upscaler.upscale_clip(low, out_side, 0)
    crop_seconds = time.perf_counter() - started
    job_seconds = _job_seconds(upscaler, (height, width), whole, crop_seconds, out_side)
    nearest = np.kron(frame.rgb[top:top + side, left:left + side],
                      np.ones((round(factor_y), round(factor_x), 1), np.uint8))
    panels = [(nearest, "input"), (quantize(bicubic)[0], "bicubic"), (quantize(upscaled)[0], upscaler.name)]
    _write_panels(dst, panels)
    return Preview(dst, float(info.cut.offset), (left, top, side), upscaler.name, crop_seconds, job_seconds)


def _job_seconds(upscaler, size: HW, whole: VideoInfo, crop_seconds: float, crop_size: HW) -> float:
    """The full job's model and filter time: the upscaler's own estimate where it has one, else the crop's
    time scaled by output pixels (cost is linear in them)."""
    if hasattr(upscaler, "estimate_seconds"):
        return upscaler.estimate_seconds(size, whole.frames, (whole.height, whole.width))
    return crop_seconds * whole.frames * size[0] * size[1] / (crop_size[0] * crop_size[1])


def _write_panels(path: Path, panels: list[tuple[np.ndarray, str]]) -> None:
    height = max(image.shape[0] for image, _ in panels)
    width = sum(image.shape[1] for image, _ in panels) + GAP * (len(panels) - 1)
    canvas = Image.new("RGB", (width, height + LABEL_HEIGHT), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    x = 0
    for image, label in panels:
        canvas.paste(Image.fromarray(image), (x, LABEL_HEIGHT))
        draw.text((x + 2, 3), label, fill=(0, 0, 0))
        x += image.shape[1] + GAP
    canvas.save(path)


def describe(result: Preview) -> str:
    """The line the CLI prints.

    Args:
        result (Preview): what `preview` returned.

    Returns:
        str: one line: the PNG, the crop, the model's time on it and the job's estimated time.
    """
    left, top, side = result.box
    return (f"wrote {result.path}: the {side}x{side} px crop at ({left}, {top}) of the frame at {result.at:.2f} s; "
            f"{result.model} took {result.crop_seconds:.1f} s on it; the whole job needs about "
            f"{duration(result.job_seconds)} of model and filter time on this machine")

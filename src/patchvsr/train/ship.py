"""Put a trained model into the package: `python -m patchvsr.train.ship RUN/model [--notes NOTES.md]`.

Writes `src/patchvsr/weights/tiny/` (what `--model tiny` loads): the weights as float16 safetensors (half
the size; loading casts them back to float32), config.json, training.json and model_card.md, whose
training section comes from the run and which ends with NOTES.md (evaluation, ablations, limits). The
folder is written next to the target and renamed into place, so a failed export leaves the old one intact.
`--fidelity-only REASON` records in training.json that the model's multi-step detail mode was measured
unusable (`patchvsr upscale --steps N` then warns with REASON).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

from patchvsr.errors import InputError, PatchVSRError
from patchvsr.models import PatchVSRModel

PACKAGE_WEIGHTS = Path(__file__).resolve().parent.parent / "weights"


def ship(source: Path, target: Path, notes: str = "", fidelity_only: str | None = None) -> dict[str, int]:
    """Copy the model folder `source` (written by `patchvsr train adapter`) to `target` in float16.

    Args:
        source (Path): the trained model folder (RUN/model, with training.json).
        target (Path): the folder to write (replaced only once the new one is complete).
        notes (str, *optional*): markdown appended to the model card (evaluation, ablations, limits).
        fidelity_only (str, *optional*): why the detail mode (steps > 1) is not to be used, as measured;
            written to training.json as `fidelity_only`.

    Returns:
        dict[str, int]: the size in bytes of each file written, by its path relative to `target`.

    Raises:
        InputError: if `source` has no training.json.
    """
    source, target = Path(source), Path(target)
    training = source / "training.json"
    if not training.is_file():
        raise InputError(f"{source} has no training.json: not a trained PatchVSR model folder")
    model = PatchVSRModel.from_pretrained(source)
    card = (source / "model_card.md").read_text() if (source / "model_card.md").is_file() else ""
    run_section = card[card.index("## Training"):] if "## Training" in card else ""
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging, card=run_section.rstrip() + "\n\n" + notes.strip() + "\n", dtype=torch.float16)
    record = json.loads(training.read_text())
    if fidelity_only:
        record["fidelity_only"] = fidelity_only
    (staging / "training.json").write_text(json.dumps(record, indent=1) + "\n")
    previous = target.with_name(target.name + ".previous")
    shutil.rmtree(previous, ignore_errors=True)
    if target.exists():
        target.rename(previous)
    staging.rename(target)
    shutil.rmtree(previous, ignore_errors=True)
    return {path.relative_to(target).as_posix(): path.stat().st_size for path in sorted(target.rglob("*"))
            if path.is_file()}


def main(argv: list[str] | None = None) -> int:
    """`python -m patchvsr.train.ship`.

    Args:
        argv (list[str], *optional*): the arguments (default: sys.argv[1:]).

    Returns:
        int: the exit status (0, or 2 after a one-line error).
    """
    parser = argparse.ArgumentParser(prog="python -m patchvsr.train.ship", description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="trained model folder (RUN/model)")
    parser.add_argument("--name", default="tiny", help="name under patchvsr/weights/ (default tiny)")
    parser.add_argument("--notes", type=Path, help="markdown appended to the model card")
    parser.add_argument("--fidelity-only", metavar="REASON",
                        help="record that the detail mode (--steps > 1) was measured unusable, and why")
    args = parser.parse_args(argv)
    try:
        notes = args.notes.read_text() if args.notes else ""
        sizes = ship(args.source, PACKAGE_WEIGHTS / args.name, notes, args.fidelity_only)
    except (PatchVSRError, OSError) as err:
        print(f"patchvsr ship: error: {err}", file=sys.stderr)
        return 2
    for name, size in sizes.items():
        print(f"{size / 1e6:8.2f} MB  {name}")
    print(f"{sum(sizes.values()) / 1e6:8.2f} MB  total in {PACKAGE_WEIGHTS / args.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

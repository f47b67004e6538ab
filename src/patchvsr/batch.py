"""Upscale many inputs into one folder: `upscale_batch`, locally one after another or on a Ray cluster.

On Ray, `jobs` inputs are driven at once (each spreading its clips over the whole cluster), so the cluster
stays busy while one video's last tasks finish. An input that fails with a user error (unreadable file,
existing output, ...) is logged as one line and skipped; the others still run, and `BatchError` reports the
failures at the end. Internal errors stop the batch.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from patchvsr.api import upscale_video, write_stats
from patchvsr.errors import OptionError, OutputError, PatchVSRError

log = logging.getLogger("patchvsr")

FORMATS = ("mp4", "mkv", "png")


class BatchError(PatchVSRError):
    """Some inputs of a batch failed; the others were written."""


def batch_outputs(inputs: list[str | Path], out_dir: str | Path, fmt: str = "mp4") -> list[tuple[Path, Path]]:
    """(input, output) pairs: OUT_DIR/<input name without suffix>.<fmt> (a folder for png)."""
    if fmt not in FORMATS:
        raise OptionError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if not inputs:
        raise OptionError("no input given")
    out_dir = Path(out_dir)
    pairs, seen = [], {}
    for src in map(Path, inputs):
        name = src.name if src.is_dir() else src.stem
        dst = out_dir / (name if fmt == "png" else f"{name}.{fmt}")
        if dst in seen:
            raise OptionError(f"{seen[dst]} and {src} would both be written to {dst}; rename one of them")
        seen[dst] = src
        pairs.append((src, dst))
    return pairs


def upscale_batch(inputs: list[str | Path], out_dir: str | Path, *, fmt: str = "mp4", ray=None,
                  jobs: int | None = None, stats: str | Path | None = None, **options) -> dict:
    """Upscale every input into `out_dir` (created if missing) and return `{"videos", "failed", "seconds"}`.

    ray: None for local runs, else RayOptions (see `patchvsr.distributed`); jobs: inputs processed at once
    (default 1 locally, 2 on Ray); options: keyword arguments of `patchvsr.api.upscale_video` (scale, size,
    model, crf, resume, overwrite, device, fps, and the model options). Raises BatchError after the run if an
    input failed; `stats` (JSON) is written in any case.
    """
    started = time.perf_counter()
    pairs = batch_outputs(inputs, out_dir, fmt)
    jobs = jobs if jobs is not None else (1 if ray is None else 2)
    if not isinstance(jobs, int) or jobs < 1:
        raise OptionError(f"--jobs must be an integer >= 1, got {jobs!r}")
    try:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"{out_dir}: cannot create the output folder ({err.strerror})") from err
    if ray is None:
        results = [_one(upscale_video, src, dst, options) for src, dst in pairs]
    else:
        from patchvsr.distributed import RayRunner, upscale_video_ray

        with RayRunner(ray) as runner, ThreadPoolExecutor(jobs) as pool:
            def run(src, dst, options=dict(options, ray=runner)):
                return _one(upscale_video_ray, src, dst, options)
            results = list(pool.map(run, *zip(*pairs)))
    summary = {"videos": [r for r in results if "error" not in r], "failed": [r for r in results if "error" in r],
               "seconds": round(time.perf_counter() - started, 3)}
    if stats is not None:
        write_stats(Path(stats), summary)
    if summary["failed"]:
        raise BatchError(f"{len(summary['failed'])} of {len(pairs)} inputs failed: "
                         + ", ".join(f["input"] for f in summary["failed"]))
    return summary


def _one(upscale, src: Path, dst: Path, options: dict) -> dict:
    """Run one input; a user error becomes {"input", "output", "error"} (and a log line)."""
    try:
        result = upscale(src, dst, **options)
    except PatchVSRError as err:
        log.error("error: %s", err)
        return {"input": str(src), "output": str(dst), "error": str(err)}
    log.info("done %s -> %s: %d frames in %.1f s", src, dst, result["frames"], result["seconds"])
    return result

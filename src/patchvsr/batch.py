"""Upscale many inputs into one folder: `upscale_batch`, locally or on a Ray cluster.

Locally the model is loaded once and the inputs run one after another (`jobs=1`), or `jobs` inputs at once,
each in its own worker process that loads the model once and runs on `cpu_count // jobs` threads. On Ray,
`jobs` inputs are driven at once (each spreading its clips over the whole cluster), so the cluster stays busy
while one video's last tasks finish. An input that fails with a user error (unreadable file, existing
output, ...) is logged as one line and skipped; the others still run, and `BatchError` reports the failures
at the end. Internal errors stop the batch.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import torch

from patchvsr.api import upscale_video, write_stats
from patchvsr.errors import OptionError, OutputError, PatchVSRError
from patchvsr.io.target import FORMATS
from patchvsr.methods import get_upscaler
from patchvsr.options import MODEL_OPTION_NAMES

log = logging.getLogger("patchvsr")


class BatchError(PatchVSRError):
    """Some inputs of a batch failed; the others were written."""


def batch_outputs(inputs: list[str | Path], out_dir: str | Path, fmt: str = "mp4") -> list[tuple[Path, Path]]:
    """(input, output) pairs: OUT_DIR/<input name without suffix>.<fmt> (a folder for png).

    Args:
        inputs (list[str or Path]): the input videos or PNG folders, at least one.
        out_dir (str or Path): the output folder.
        fmt (str, *optional*, defaults to "mp4"): one of `patchvsr.io.target.FORMATS`.

    Returns:
        list[tuple[Path, Path]]: (input, output) per input, in order.

    Raises:
        OptionError: for an unknown format, no input, or two inputs that would be written to one output.
    """
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

    Args:
        inputs (list[str or Path]): the input videos or PNG folders, at least one.
        out_dir (str or Path): the output folder.
        fmt (str, *optional*, defaults to "mp4"): the output format, one of `patchvsr.io.target.FORMATS`.
        ray (RayOptions, *optional*): None for local runs, else where and how to run on Ray (see
            `patchvsr.distributed`).
        jobs (int, *optional*): inputs processed at once, >= 1 (default 1 locally, 2 on Ray).
        stats (str or Path, *optional*): where to write the summary as JSON; it is written in any case.
        options: keyword arguments of `patchvsr.api.upscale_video` (scale, size, model, codec, crf, preset,
            pix_fmt, start, duration, frames, resume, overwrite, device, fps, and the model options).

    Returns:
        dict: "videos": the stats dicts of the inputs written; "failed": {"input", "output", "error"} per input
        that failed; "seconds": the batch's wall time.

    Raises:
        OptionError: for a bad format, job count, model or model option (before anything is written).
        OutputError: if the output folder cannot be created.
        BatchError: after the run, if an input failed.
    """
    started = time.perf_counter()
    # a folder output is spelt with a trailing slash (upscale_video refuses a bare name without a suffix)
    pairs = [(src, f"{dst}/" if fmt == "png" else str(dst)) for src, dst in batch_outputs(inputs, out_dir, fmt)]
    jobs = jobs if jobs is not None else (1 if ray is None else 2)
    if not isinstance(jobs, int) or jobs < 1:
        raise OptionError(f"--jobs must be an integer >= 1, got {jobs!r}")
    # a bad model or model option fails the whole batch here, once, before anything is written
    upscaler = _load(options) if ray is None else None
    try:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"{out_dir}: cannot create the output folder ({err.strerror})") from err
    if ray is not None:
        results = _run_on_ray(pairs, ray, jobs, options)
    elif jobs == 1 or len(pairs) == 1:
        results = [_one(src, dst, dict(options, upscaler=upscaler)) for src, dst in pairs]
    else:
        del upscaler  # each worker process loads its own
        results = _run_in_processes(pairs, jobs, options)
    for result in results:
        _log_result(result)
    summary = {"videos": [r for r in results if "error" not in r], "failed": [r for r in results if "error" in r],
               "seconds": round(time.perf_counter() - started, 3)}
    if stats is not None:
        write_stats(Path(stats), summary)
    if summary["failed"]:
        raise BatchError(f"{len(summary['failed'])} of {len(pairs)} inputs failed: "
                         + ", ".join(f["input"] for f in summary["failed"]))
    return summary


def _load(options: dict):
    """The upscaler every input of the batch shares: loaded once (an unknown model fails the whole batch)."""
    model_options = {name: options.get(name) for name in MODEL_OPTION_NAMES}
    return get_upscaler(options.get("model"), device=options.get("device", "auto"), **model_options)


def _one(src: Path, dst: str, options: dict, upscale=upscale_video) -> dict:
    """Run one input; a user error becomes {"input", "output", "error"}."""
    try:
        return upscale(src, dst, **options)
    except PatchVSRError as err:
        return {"input": str(src), "output": str(dst), "error": str(err)}


def _log_result(result: dict) -> None:
    if "error" in result:
        log.error("error: %s", result["error"])
    else:
        log.info("done %s -> %s: %d frames in %.1f s", result["input"], result["output"], result["frames"],
                 result["seconds"])


def _run_on_ray(pairs: list[tuple[Path, str]], ray, jobs: int, options: dict) -> list[dict]:
    from patchvsr.distributed import RayRunner, upscale_video_ray

    with RayRunner(ray) as runner, ThreadPoolExecutor(jobs) as pool:
        def run(src, dst, options=dict(options, ray=runner)):
            return _one(src, dst, options, upscale_video_ray)
        return list(pool.map(run, *zip(*pairs)))


def _run_in_processes(pairs: list[tuple[Path, str]], jobs: int, options: dict) -> list[dict]:
    """`jobs` worker processes (spawned, so no forked torch state), each loading the model once."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(jobs, len(pairs)), mp_context=context, initializer=_start_worker,
                             initargs=(threads, options)) as pool:
        return list(pool.map(_worker_one, *zip(*pairs)))


_worker: dict = {}  # in a worker process: the options with the loaded upscaler


def _start_worker(threads: int, options: dict) -> None:
    torch.set_num_threads(threads)
    _worker.update(options, upscaler=_load(options))


def _worker_one(src: Path, dst: str) -> dict:
    return _one(src, dst, _worker)

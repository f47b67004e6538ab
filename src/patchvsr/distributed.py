"""Multi-machine inference on Ray (`pip install patchvsr[ray]`): one video's clips spread over a cluster.

The driver (the process that calls `upscale_video_ray`) decodes the input and cuts it into clips exactly as a
single-process run does (`split_clips`), groups consecutive clips into tasks and keeps a bounded number of
tasks in flight. A task runs on one worker (one GPU, or one CPU core without GPUs): it upscales its clips,
cross-fades them (`join_clips`) and returns their uint8 frames. A task whose first clip follows another
task's also gets that earlier clip, recomputed only to seed the cross-fade, as a resumed run does; clip
seeds derive from (seed, clip index), so the recomputed clip is the same. The driver takes the results in
order and feeds them to the usual resumable `OutputRun` (segments, audio, metadata, atomic rename): the
decoded frames equal a single-process run's, bit for bit for `.mkv`/PNG and, because segments are cut at the
same clips, for `.mp4` too.

Workers build the upscaler once per process from an `UpscalerSpec` (model name or folder, device, options)
and keep it for later tasks. A model folder must exist at the same path on every node. Tasks lost to a dying
worker or node are rerun by Ray (`max_retries`); errors raised by the method itself are not retried.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from patchvsr.api import upscale_and_join, upscale_video
from patchvsr.errors import OptionError, PatchVSRError
from patchvsr.io.run import HRBlock
from patchvsr.methods import default_model
from patchvsr.methods.base import Upscaler
from patchvsr.sizes import HW
from patchvsr.tiling.temporal import Clip, TimedFrame, count_clips, split_clips

log = logging.getLogger("patchvsr")

Blocks = list[HRBlock]  # the HR blocks of a task's clips, in clip order


@dataclasses.dataclass(frozen=True)
class UpscalerSpec:
    """What a worker needs to build the upscaler: `get_upscaler(model, device, **options)`.

    options: (name, value) pairs of model options, None values left out; hashable, so it keys the cache.
    """

    model: str
    device: str = "auto"
    options: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def create(cls, model: str | Path | None, device: str = "auto", **options) -> UpscalerSpec:
        """A spec; None is the driver's default model (workers need not share its environment), and a model
        folder's path is made absolute (workers need not share the driver's cwd).

        Args:
            model (str or Path, *optional*): a model name or folder (None: the driver's default model).
            device (str, *optional*, defaults to "auto"): auto, cpu, cuda or cuda:N, resolved on the worker.
            options: the model options; None values are left out.

        Returns:
            UpscalerSpec: the hashable spec.
        """
        model = model or default_model()
        model = str(Path(model).resolve()) if Path(model).is_dir() else str(model)
        return cls(model, str(device), tuple(sorted((k, v) for k, v in options.items() if v is not None)))

    def build(self) -> Upscaler:
        """The upscaler this spec names, loaded in the calling process (a Ray worker).

        Returns:
            Upscaler: `get_upscaler(model, device, **options)`.
        """
        from patchvsr.methods import get_upscaler

        return get_upscaler(self.model, self.device, **dict(self.options))


@dataclasses.dataclass(frozen=True)
class RayOptions:
    """How the work is spread. address: a Ray cluster (`host:6379`, `ray://host:10001`) or None for
    RAY_ADDRESS / a cluster started with `ray start` on this machine / a new local one.
    clips_per_task: clips per task (None: about two tasks per worker, 1 to 8 clips);
    in_flight: tasks submitted ahead of the one the writer waits for (None: twice the workers);
    max_retries: reruns of a task lost to a failed worker or node; cpus_per_task: CPU cores per task when the
    cluster has no GPUs (each task then runs PyTorch on that many threads)."""

    address: str | None = None
    clips_per_task: int | None = None
    in_flight: int | None = None
    max_retries: int = 3
    cpus_per_task: int = 1

    def __post_init__(self) -> None:
        for name in ("clips_per_task", "in_flight"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise OptionError(f"{name} must be an integer >= 1, got {value!r}")
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise OptionError(f"max_retries must be an integer >= 0, got {self.max_retries!r}")
        if not isinstance(self.cpus_per_task, int) or self.cpus_per_task < 1:
            raise OptionError(f"cpus_per_task must be an integer >= 1, got {self.cpus_per_task!r}")


@dataclasses.dataclass
class RemoteLayout:
    """The driver's stand-in for the upscaler (the model lives on the workers): its clip layout and the
    `describe()` fields last reported by a task."""

    name: str
    clip_frames: int
    clip_overlap: int
    described: dict

    def describe(self) -> dict:
        """The upscaler's `describe()` fields, as the driver measured them once.

        Returns:
            dict: a copy of `described`.
        """
        return dict(self.described)


# ----- worker side -------------------------------------------------------------------------------------------
_CACHE: dict[UpscalerSpec, Upscaler] = {}


def cached_upscaler(spec: UpscalerSpec) -> Upscaler:
    """The upscaler of `spec`, built once per worker process (only the latest spec is kept).

    Args:
        spec (UpscalerSpec): what to build.

    Returns:
        Upscaler: the cached method.

    Raises:
        OptionError: for an unknown model, model option or device.
    """
    if spec not in _CACHE:
        _CACHE.clear()
        _CACHE[spec] = spec.build()
    return _CACHE[spec]


def describe_layout(spec: UpscalerSpec) -> RemoteLayout:
    """Task: build the upscaler (validating its options) and report its clip layout.

    Args:
        spec (UpscalerSpec): what to build.

    Returns:
        RemoteLayout: the method's name, clip layout and `describe()` fields.

    Raises:
        OptionError: for an unknown model, model option or device.
    """
    upscaler = cached_upscaler(spec)
    return RemoteLayout(upscaler.name, upscaler.clip_frames, upscaler.clip_overlap, upscaler.describe())


def upscale_task(spec: UpscalerSpec, clips: list[Clip], size: HW, warmup: bool) -> tuple[Blocks, dict]:
    """Task: upscale consecutive clips and cross-fade them.

    Args:
        spec (UpscalerSpec): the method to use (built once per worker).
        clips (list[Clip]): consecutive clips, frames (T, H, W, 3) uint8 or uint16 RGB.
        size (HW): (out_h, out_w) of the output frames.
        warmup (bool): the first clip only seeds the cross-fade and yields no block.

    Returns:
        tuple[Blocks, dict]: the clips' HR blocks (final frames (n, out_h, out_w, 3) of the clips' dtype), and
        the upscaler's `describe()`.
    """
    upscaler = cached_upscaler(spec)
    clips = [dataclasses.replace(clip, frames=np.array(clip.frames)) for clip in clips]  # writable copies
    blocks = list(upscale_and_join(clips, upscaler, size, warmup))
    return blocks, upscaler.describe()


# ----- driver side -------------------------------------------------------------------------------------------
class RayRunner:
    """A connection to a Ray cluster and the task settings derived from it. Use as a context manager:
    a Ray instance started here is shut down on exit; one already running is left alone."""

    def __init__(self, options: RayOptions | None = None):
        self.options = options or RayOptions()
        self._started = False

    def __enter__(self) -> RayRunner:
        ray = _import_ray()
        if not ray.is_initialized():
            ray.init(address=self.options.address, logging_level=logging.WARNING, log_to_driver=False,
                     include_dashboard=False)
            self._started = True
        resources = ray.cluster_resources()
        self.gpus = int(resources.get("GPU", 0))
        self.workers = self.gpus or max(1, int(resources.get("CPU", 1)) // self.options.cpus_per_task)
        return self

    def __exit__(self, *exc) -> None:
        if self._started:
            _import_ray().shutdown()
            self._started = False

    def task_resources(self, device: str) -> dict:
        """Ray resources of one task: a GPU when the cluster has them (unless device is cpu), else CPUs.

        Args:
            device (str): the requested device: auto, cpu, cuda or cuda:N.

        Returns:
            dict: keyword arguments of `ray.remote`: num_gpus and num_cpus, or num_cpus.

        Raises:
            OptionError: for cuda on a cluster without GPUs.
        """
        if device == "cuda" and not self.gpus:
            raise OptionError("--device cuda requested but the Ray cluster has no GPU")
        if self.gpus and device != "cpu":
            return {"num_gpus": 1, "num_cpus": 1}
        return {"num_cpus": self.options.cpus_per_task}

    def layout(self, spec: UpscalerSpec) -> RemoteLayout:
        """Build the upscaler on a worker (errors in the options surface here) and return its layout.

        Args:
            spec (UpscalerSpec): the method to build.

        Returns:
            RemoteLayout: the method's name, clip layout and `describe()` fields.

        Raises:
            OptionError: for an unknown model, model option or device.
        """
        task = _remote(describe_layout, self.options.max_retries, **self.task_resources(spec.device))
        return _get(task.remote(spec))

    def clips_per_task(self, frames: int, layout: RemoteLayout) -> int:
        """Clips per task: the option, or enough tasks for about two per worker, at most 8 clips each.

        Args:
            frames (int): the input's expected frame count (a hint).
            layout (RemoteLayout): the method's clip layout.

        Returns:
            int: clips per task, >= 1.
        """
        if self.options.clips_per_task is not None:
            return self.options.clips_per_task
        clips = count_clips(max(frames, 1), layout.clip_frames, layout.clip_overlap)
        return max(1, min(8, math.ceil(clips / (2 * self.workers))))

    def upscale_clips(self, frames: Iterable[TimedFrame], spec: UpscalerSpec, layout: RemoteLayout,
                      size: HW, start_clip: int, per_task: int) -> Iterator[HRBlock]:
        """Like `patchvsr.api.upscale_clips`, on the cluster: the HR blocks in clip order.

        Args:
            frames (Iterable[TimedFrame]): the input's (H, W, 3) uint8 or uint16 RGB frames with timestamps.
            spec (UpscalerSpec): the method the workers build.
            layout (RemoteLayout): its clip layout; its `described` is updated from every task.
            size (HW): (out_h, out_w) of the output frames.
            start_clip (int): the first clip to yield, >= 0.
            per_task (int): clips per task, >= 1.

        Yields:
            HRBlock: (clip index, frames (n, out_h, out_w, 3), their n timestamps) per clip.
        """
        task = _remote(upscale_task, self.options.max_retries, **self.task_resources(spec.device))
        in_flight = self.options.in_flight or 2 * self.workers
        warmup = start_clip > 0 and layout.clip_overlap > 0
        clips = split_clips(frames, layout.clip_frames, layout.clip_overlap, start_clip - warmup)
        pending: deque = deque()
        for group, seeded in task_groups(clips, per_task, layout.clip_overlap > 0, warmup):
            pending.append(task.remote(spec, group, size, seeded))
            if len(pending) > in_flight:
                yield from self._collect(pending.popleft(), layout)
        while pending:
            yield from self._collect(pending.popleft(), layout)

    def _collect(self, ref, layout: RemoteLayout) -> Blocks:
        blocks, described = _get(ref)
        layout.described = described
        return blocks


def task_groups(clips: Iterable[Clip], per_task: int, overlapping: bool,
                warmup: bool) -> Iterator[tuple[list[Clip], bool]]:
    """Group consecutive clips into tasks of `per_task` clips.

    Args:
        clips (Iterable[Clip]): consecutive clips.
        per_task (int): clips per task, >= 1 (not counting the seed).
        overlapping (bool): clips overlap: every task but the stream's first is prefixed by the clip before it.
        warmup (bool): the first clip of `clips` is such a seed (a resumed run).

    Yields:
        tuple[list[Clip], bool]: (clips, seeded); seeded=True: the first clip only seeds the cross-fade.
    """
    previous, group = None, []
    for clip in clips:
        if warmup:
            previous, warmup = clip, False
            continue
        group.append(clip)
        if len(group) == per_task:
            yield _with_seed(previous, group, overlapping)
            previous, group = group[-1], []
    if group:
        yield _with_seed(previous, group, overlapping)


def _with_seed(previous: Clip | None, group: list[Clip], overlapping: bool) -> tuple[list[Clip], bool]:
    seeded = overlapping and previous is not None
    return ([previous] if seeded else []) + group, seeded


class RayExecutor:
    """The executor of `patchvsr.api.upscale_video` (see `LocalExecutor`) that runs the clips as Ray tasks."""

    def __init__(self, runner: RayRunner):
        self.runner = runner
        self.clip_count = 0

    def prepare(self, model: str | None, device: str, model_options: dict) -> RemoteLayout:
        """Build the method on a worker, validating its options.

        Args:
            model (str, *optional*): a model name or folder (None: the driver's default model).
            device (str): auto, cpu, cuda or cuda:N.
            model_options (dict): the model options; None values are defaults.

        Returns:
            RemoteLayout: the driver's stand-in for the method.

        Raises:
            OptionError: for an unknown model, model option or device.
        """
        self.spec = UpscalerSpec.create(model, device, **model_options)
        self.layout = self.runner.layout(self.spec)
        return self.layout

    def log_start(self, info, size: HW) -> None:
        """Choose the clips per task for this input and log the cluster's layout.

        Args:
            info (VideoInfo): the probed input (its frame count).
            size (HW): (out_h, out_w) of the output frames (unused).
        """
        self.per_task = self.runner.clips_per_task(info.frames, self.layout)
        log.info("ray: %d worker(s)%s, %d clip(s) per task", self.runner.workers,
                 " (GPU)" if self.runner.gpus else "", self.per_task)

    def clips(self, frames: Iterable[TimedFrame], size: HW, start_clip: int,
              within_clip) -> Iterator[HRBlock]:
        """The HR blocks of the stream's clips from `start_clip`, upscaled by Ray tasks.

        Args:
            frames (Iterable[TimedFrame]): the input's (H, W, 3) uint8 or uint16 RGB frames with timestamps.
            size (HW): (out_h, out_w) of the output frames.
            start_clip (int): the first clip to yield, >= 0.
            within_clip (ClipProgress): unused: tasks report no progress inside a clip.

        Yields:
            HRBlock: (clip index, frames (n, out_h, out_w, 3), their n timestamps) per clip.
        """
        for block in self.runner.upscale_clips(frames, self.spec, self.layout, size, start_clip, self.per_task):
            self.clip_count += 1
            yield block

    def stats(self) -> dict:
        """What Ray adds to the run's stats.

        Returns:
            dict: `{"ray": {"workers", "gpus", "clips_per_task", "clips"}}`.
        """
        return {"ray": {"workers": self.runner.workers, "gpus": self.runner.gpus, "clips_per_task": self.per_task,
                        "clips": self.clip_count}}


def upscale_video_ray(src: str | Path, dst: str | Path, *, ray: RayOptions | RayRunner | None = None,
                      **options) -> dict:
    """`patchvsr.api.upscale_video` with the clips upscaled by Ray tasks; same arguments, output and errors.

    Args:
        src (str or Path): the input video or PNG folder.
        dst (str or Path): the output file or folder.
        ray (RayOptions or RayRunner, *optional*): RayOptions (connects, and shuts down a Ray instance it
            started) or an entered RayRunner (reused, e.g. across a batch); None: default RayOptions.
        options: the other keyword arguments of `patchvsr.api.upscale_video`.

    Returns:
        dict: the stats of `upscale_video`, plus `"ray": {"workers", "gpus", "clips_per_task", "clips"}`; its
        `peak_rss_mb` is the driver's (the workers report none).

    Raises:
        OptionError: without Ray installed, and as `upscale_video`.
        InputError: as `upscale_video`.
        OutputError: as `upscale_video`.
    """
    if not isinstance(ray, RayRunner):
        with RayRunner(ray) as runner:
            return upscale_video_ray(src, dst, ray=runner, **options)
    return upscale_video(src, dst, executor=RayExecutor(ray), **options)


def _import_ray():
    try:
        import ray
    except ModuleNotFoundError as err:
        raise OptionError("--ray needs Ray: pip install 'patchvsr[ray]'") from err
    return ray


@functools.cache
def _remote(function, max_retries: int, **resources):
    """`function` as a Ray remote function with these resources (made once per combination)."""
    return _import_ray().remote(max_retries=max_retries, **resources)(function)


def _get(ref):
    """ray.get, with an error of the method (bad option, bad model folder) re-raised as itself: one line."""
    ray = _import_ray()
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as err:
        if isinstance(err.cause, PatchVSRError):
            raise err.cause from None
        raise

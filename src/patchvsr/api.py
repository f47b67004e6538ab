"""Public Python API: `upscale_video` (file or PNG folder in, file or PNG folder out) and `upscale_stream`.

The clip loop is the same for every method: frames are cut into clips of the upscaler's `clip_frames`
with `clip_overlap` shared frames, each clip is upscaled as a float tensor, consecutive clips are
cross-faded, and only then are frames quantised (round, clamp) for the writer: to uint8, or to uint16 where a
video of more than 8 bits per sample goes into an output of more than 8 (`full_depth`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from einops import rearrange

from patchvsr.errors import OptionError, OutputError
from patchvsr.io.codecs import check_encoder, settings
from patchvsr.io.probe import VideoInfo, probe
from patchvsr.io.reader import read_frames
from patchvsr.io.run import ClipProgress, HRBlock, OutputRun, Progress
from patchvsr.io.span import Span
from patchvsr.io.target import check_output, output_kind, output_size
from patchvsr.io.writer import OutputSpec
from patchvsr.memory import PeakMemory, trim
from patchvsr.methods import get_upscaler
from patchvsr.methods.base import Upscaler
from patchvsr.sizes import HW, WH
from patchvsr.tiling.temporal import Clip, TimedFrame, clip_step, join_clips, split_clips
from patchvsr.version import __version__

log = logging.getLogger("patchvsr")


def upscale_clips(frames: Iterable[np.ndarray | TimedFrame], upscaler: Upscaler, size: HW,
                  start_clip: int = 0, within_clip: ClipProgress | None = None) -> Iterator[HRBlock]:
    """Yield the HR block of each of the stream's clips from `start_clip`.

    With overlapping clips, resuming at clip k > 0 recomputes clip k - 1 (deterministic: seeds derive from the
    clip index) for the cross-fade and yields nothing for it.

    Args:
        frames (Iterable[np.ndarray or TimedFrame]): (H, W, 3) uint8 (or uint16) RGB frames, or `TimedFrame`s
            to get their timestamps back.
        upscaler (Upscaler): the method; its `clip_frames` and `clip_overlap` cut the clips.
        size (HW): (out_h, out_w) of the output frames.
        start_clip (int, *optional*, defaults to 0): the first clip to yield, >= 0.
        within_clip (ClipProgress, *optional*): told the fraction done in [0, 1] of the clip being upscaled, by
            upscalers that report it.

    Yields:
        HRBlock: (clip index, frames (n, out_h, out_w, 3) of the input's dtype, their n timestamps or None).
    """
    overlap = upscaler.clip_overlap
    warmup = start_clip > 0 and overlap > 0
    clips = split_clips(frames, upscaler.clip_frames, overlap, start_clip - warmup)
    yield from upscale_and_join(clips, upscaler, size, warmup, within_clip)


def upscale_and_join(clips: Iterable[Clip], upscaler: Upscaler, size: HW, warmup: bool,
                     within_clip: ClipProgress | None = None) -> Iterator[HRBlock]:
    """Upscale consecutive clips and cross-fade their overlaps: one HRBlock per clip (its first `step` frames,
    all real ones for the last clip, with their timestamps).

    Args:
        clips (Iterable[Clip]): consecutive clips, frames (T, H, W, 3) uint8 or uint16 RGB.
        upscaler (Upscaler): the method that upscales each clip.
        size (HW): (out_h, out_w) of the output frames.
        warmup (bool): the first clip only seeds the cross-fade and yields nothing (nor reports progress).
        within_clip (ClipProgress, *optional*): told the fraction done in [0, 1] of the clip being upscaled.

    Yields:
        HRBlock: (clip index, frames (n, out_h, out_w, 3) of the clip's dtype, their n timestamps or None).
    """
    stamps: dict[int, tuple[tuple[int, ...] | None, type]] = {}  # clip index -> timestamps, the frames' dtype

    def outputs() -> Iterator[tuple[Clip, torch.Tensor]]:
        for n, clip in enumerate(clips):
            stamps[clip.index] = clip.pts, clip.frames.dtype.type
            yield clip, upscale_pixel_clip(upscaler, clip.frames, size, clip.index,
                                           None if warmup and n == 0 else within_clip)

    for index, block in join_clips(outputs(), upscaler.clip_overlap, warmup=warmup):
        pts, dtype = stamps.pop(index)
        for older in [key for key in stamps if key < index]:  # the warm-up clip's
            del stamps[older]
        yield HRBlock(index, quantize(block, dtype), None if pts is None else pts[:len(block)])
        trim()  # what this clip freed goes back to the system: peak memory stays flat over long videos


def upscale_stream(frames: Iterable[np.ndarray], upscaler: Upscaler, size: HW, *,
                   start_clip: int = 0, progress: Progress | None = None) -> Iterator[np.ndarray]:
    """Upscale a stream of RGB frames, one frame out per frame in.

    Args:
        frames (Iterable[np.ndarray]): (H, W, 3) uint8 RGB frames, all of one size.
        upscaler (Upscaler): the method.
        size (HW): (out_h, out_w) of the output frames.
        start_clip (int, *optional*, defaults to 0): the first frame yielded is frame
            `start_clip · (clip_frames - clip_overlap)`.
        progress (Progress, *optional*): called with (frames yielded so far, None) after every clip.

    Yields:
        np.ndarray: (out_h, out_w, 3) uint8 RGB frames.
    """
    done = 0
    for _, block, _ in upscale_clips(frames, upscaler, size, start_clip):
        yield from block
        done += len(block)
        if progress is not None:
            progress(done, None)


def quantize(frames: torch.Tensor, dtype: type = np.uint8) -> np.ndarray:
    """Quantise frames for the writer, rounded to nearest (halves up) and clamped.

    Args:
        frames (torch.Tensor): (T, 3, H, W) float in [0, 1], on the CPU.
        dtype (type, *optional*, defaults to np.uint8): np.uint8 (0-255) or np.uint16 (0-65535).

    Returns:
        np.ndarray: (T, H, W, 3) of `dtype`, contiguous.
    """
    if dtype == np.uint16:
        levels = frames.float().mul(65535.0).add_(0.5).clamp_(0, 65535).to(torch.int32).numpy().astype(np.uint16)
        return np.ascontiguousarray(rearrange(levels, "t c h w -> t h w c"))
    levels = frames.float().mul(255.0).add_(0.5).clamp_(0, 255).to(torch.uint8)  # truncation of x + 0.5
    return rearrange(levels, "t c h w -> t h w c").contiguous().numpy()


def upscale_pixel_clip(upscaler: Upscaler, frames: np.ndarray, size: HW, index: int,
                       within_clip: ClipProgress | None = None) -> torch.Tensor:
    """Upscale one clip of quantised frames with the upscaler, as floats.

    Args:
        upscaler (Upscaler): the method.
        frames (np.ndarray): (T, H, W, 3) uint8 or uint16 RGB.
        size (HW): (out_h, out_w) of the output frames.
        index (int): the clip's index in the stream, >= 0 (seeds derive from it).
        within_clip (ClipProgress, *optional*): told the fraction done in [0, 1], if the upscaler reports it.

    Returns:
        torch.Tensor: (T, 3, out_h, out_w) float32 in [0, 1] from the upscaler.

    Raises:
        RuntimeError: if the upscaler returns another shape.
    """
    scale = 65535.0 if frames.dtype == np.uint16 else 255.0
    pixels = torch.from_numpy(frames.astype(np.int32) if frames.dtype == np.uint16 else frames)
    clip = rearrange(pixels, "t h w c -> t c h w").float().div_(scale)
    if within_clip is not None and getattr(upscaler, "reports_progress", False):
        out = upscaler.upscale_clip(clip, size, index, progress=within_clip)
    else:
        out = upscaler.upscale_clip(clip, size, index)
    expected = (len(frames), 3, *size)
    if tuple(out.shape) != expected:
        raise RuntimeError(f"{upscaler.name} returned a clip of shape {tuple(out.shape)}, "
                           f"expected {expected}")
    return out


class LocalExecutor:
    """Upscales the clips in this process. The executor interface `upscale_video` drives:
    prepare(model, device, model_options) -> the method (or its stand-in: name, clip layout, describe());
    log_start(info, size); clips(frames, size, start_clip, within_clip) -> HR blocks; stats() -> extra fields.
    `patchvsr.distributed.RayExecutor` runs the clips on a Ray cluster instead."""

    def __init__(self, upscaler: Upscaler | None = None):
        self.upscaler = upscaler

    def prepare(self, model: str | None, device: str, model_options: dict) -> Upscaler:
        """Load the method, unless one was given to the executor.

        Args:
            model (str, *optional*): a model name or folder (None: the default model).
            device (str): auto, cpu, cuda or cuda:N.
            model_options (dict): the model options (`patchvsr.options.MODEL_OPTIONS`); None values are defaults.

        Returns:
            Upscaler: the loaded method.

        Raises:
            OptionError: for an unknown model, model option or device.
        """
        if self.upscaler is None:
            self.upscaler = get_upscaler(model, device=device, **model_options)
        return self.upscaler

    def log_start(self, info: VideoInfo, size: HW) -> None:
        """Log the expected model and filter time of the run (see `log_expected_duration`).

        Args:
            info (VideoInfo): the probed input.
            size (HW): (out_h, out_w) of the output frames.
        """
        log_expected_duration(info, size, self.upscaler)

    def clips(self, frames: Iterable[TimedFrame], size: HW, start_clip: int,
              within_clip: ClipProgress) -> Iterator[HRBlock]:
        """The HR blocks of the stream's clips from `start_clip` (see `upscale_clips`).

        Args:
            frames (Iterable[TimedFrame]): the input's (H, W, 3) uint8 or uint16 RGB frames with timestamps.
            size (HW): (out_h, out_w) of the output frames.
            start_clip (int): the first clip to yield, >= 0.
            within_clip (ClipProgress): told the fraction done in [0, 1] of the clip being upscaled.

        Returns:
            Iterator[HRBlock]: (clip index, frames (n, out_h, out_w, 3), their n timestamps) per clip.
        """
        return upscale_clips(frames, self.upscaler, size, start_clip, within_clip)

    def stats(self) -> dict:
        """What this executor adds to the run's stats.

        Returns:
            dict: nothing for the local executor (empty).
        """
        return {}


def upscale_video(src: str | Path, dst: str | Path, *, scale: float | None = None,
                  size: WH | str | None = None, model: str | None = None,
                  codec: str | None = None, crf: int | None = None, preset: str | None = None,
                  pix_fmt: str | None = None, start: str | float | None = None,
                  duration: str | float | None = None, frames: str | None = None, stats: str | Path | None = None,
                  resume: bool = False, overwrite: bool = False, device: str = "auto",
                  fps: Fraction | str | None = None, progress: Progress | None = None,
                  upscaler: Upscaler | None = None, executor=None, **model_options) -> dict:
    """Upscale `src` into `dst` (.mkv, .mp4, .mov, .webm or a folder) and return the stats dict (also written
    to `stats`).

    The codec settings are checked by encoding one frame before any work. On an error no output, temporary
    file or state is left behind.

    Args:
        src (str or Path): the input: a video file, or a folder of numbered PNG frames.
        dst (str or Path): the output: a .mkv, .mp4, .mov or .webm file, or a folder (existing, or ending in /).
        scale (float, *optional*): factor K > 1 for both axes (default 4).
        size (WH or str, *optional*): (width, height) or "WxH" instead of `scale`, each axis scaled on its own.
        model (str, *optional*): a name or model folder (None: the embedded "lite" model, or $PATCHVSR_MODEL).
        codec (str, *optional*): the video codec (`patchvsr.io.codecs`; None: the container's default).
        crf (int, *optional*): the codec's quality (None: the codec's default).
        preset (str, *optional*): the codec's preset (None: the codec's default).
        pix_fmt (str, *optional*): the pixel format written (None: the codec's default for the input).
        start (str or float, *optional*): seconds or [H:]MM:SS[.fff]: upscale only the part from there, with its
            audio, subtitles and chapters.
        duration (str or float, *optional*): seconds or [H:]MM:SS[.fff]: the length of that part.
        frames (str, *optional*): "A:B": frames A to B-1 from 0 instead of `start` and `duration`.
        stats (str or Path, *optional*): where to write the stats dict as JSON.
        resume (bool, *optional*, defaults to False): continue an interrupted run of the same input and options.
        overwrite (bool, *optional*, defaults to False): replace an existing output (and discard an interrupted
            run).
        device (str, *optional*, defaults to "auto"): auto, cpu, cuda or cuda:N.
        fps (Fraction or str, *optional*): frame rate of a PNG-folder input (default 25).
        progress (Progress, *optional*): called with (frames done, frames in total or None).
        upscaler (Upscaler, *optional*): the method already loaded from `model`, `device` and `model_options`
            (e.g. by `upscale_batch`, which loads it once for many videos); they are then only recorded for
            `--resume`.
        executor (*optional*): where the clips are upscaled (default: a `LocalExecutor`, in this process; see
            `patchvsr.distributed.upscale_video_ray` for Ray).
        model_options: the model's options (`patchvsr.options.MODEL_OPTIONS`); None means its default.

    Returns:
        dict: the stats: frames, width, height, fps, seconds, output_mpix_per_s, peak_rss_mb, the method's
        `describe()` fields, model, fps_exact, frames_this_run, input, output (and the executor's fields).

    Raises:
        InputError: for an input that cannot be read as a video.
        OptionError: for a bad option value or combination.
        OutputError: for an output that exists, is the input, or cannot be written.
    """
    started = time.perf_counter()
    memory = PeakMemory()
    memory.reset()
    executor = executor or LocalExecutor(upscaler)
    kind = output_kind(dst)
    src, dst = Path(src), Path(dst)
    info = probe(src, Fraction(fps) if fps is not None else None, Span.from_options(start, duration, frames))
    width, height = output_size(info.width, info.height, scale, size)
    encoding = codec_settings(kind, width, height, info, codec, crf, preset, pix_fmt)
    method = executor.prepare(model, device, model_options)
    spec = OutputSpec(kind, width, height, info.fps, info.time_base, encoding, info.rotation,
                      info.sample_aspect_ratio, info.color)
    step = clip_step(method.clip_frames, method.clip_overlap)
    run = OutputRun(dst, spec, info, step, run_record(info, spec, method, model_options))
    # an interrupted run may have moved its output into place just before it was stopped
    check_output(src, dst, kind, overwrite or (resume and run.interrupted_run_exists()))
    log_plan(info, spec, method)
    executor.log_start(info, (height, width))

    deep = full_depth(info, spec)

    def clips(start_clip: int, within_clip: ClipProgress) -> Iterator[HRBlock]:
        return executor.clips(timed_frames(info, deep), (height, width), start_clip, within_clip)

    written = run.execute(clips, resume=resume, overwrite=overwrite, progress=progress)
    seconds = time.perf_counter() - started
    result = {
        "frames": run.frames_total, "width": width, "height": height, "fps": float(info.fps),
        "seconds": round(seconds, 3),
        "output_mpix_per_s": round(written * width * height / 1e6 / seconds, 3),
        "peak_rss_mb": round(memory.peak_mb(), 1),
        **method.describe(), "model": method.name,
        "fps_exact": str(info.fps), "frames_this_run": written, "input": str(src), "output": str(dst),
        **executor.stats(),
    }
    if stats is not None:
        write_stats(Path(stats), result)
    return result


def codec_settings(kind: str, width: int, height: int, info: VideoInfo, codec: str | None, crf: int | None,
                   preset: str | None, pix_fmt: str | None):
    """The checked codec settings of a video output (None for a PNG folder, which takes none).

    Args:
        kind (str): the output kind: mkv, mp4, mov, webm or png.
        width (int): the output width in pixels.
        height (int): the output height in pixels.
        info (VideoInfo): the probed input (its bit depth, HDR metadata and frame rate).
        codec (str, *optional*): the `--codec` value (None: the container's default).
        crf (int, *optional*): the `--crf` value.
        preset (str, *optional*): the `--preset` value.
        pix_fmt (str, *optional*): the `--pix-fmt` value.

    Returns:
        Settings or None: the resolved settings, None for a PNG folder.

    Raises:
        OptionError: for codec settings given to a PNG folder, or settings the codec or its encoder refuses.
    """
    if kind == "png":
        given = [flag for flag, value in (("--codec", codec), ("--crf", crf), ("--preset", preset),
                                          ("--pix-fmt", pix_fmt)) if value is not None]
        if given:
            raise OptionError(f"{', '.join(given)}: a folder of PNG frames has no codec to set")
        return None
    chosen = settings(kind, width, height, codec, crf, preset, pix_fmt, info.bit_depth, info.hdr)
    check_encoder(chosen, width, height, info.fps)
    return chosen


def full_depth(info: VideoInfo, spec: OutputSpec) -> bool:
    """Whether frames travel as uint16: an input and an output of more than 8 bits per sample.

    Args:
        info (VideoInfo): the probed input.
        spec (OutputSpec): the output.

    Returns:
        bool: True for uint16 frames (0-65535), False for uint8.
    """
    return info.bit_depth > 8 and spec.codec is not None and spec.codec.bits > 8


def write_stats(path: Path, stats: dict) -> None:
    """Write the stats JSON; an OutputError if it cannot be written (the video is already in place).

    Args:
        path (Path): the JSON file.
        stats (dict): the stats, JSON-serialisable.

    Raises:
        OutputError: if the file cannot be written.
    """
    try:
        path.write_text(json.dumps(stats, indent=2) + "\n")
    except OSError as err:
        raise OutputError(f"{path}: cannot write stats ({err.strerror})") from err


def run_record(info: VideoInfo, spec: OutputSpec, upscaler: Upscaler, model_options: dict) -> dict:
    """What must not change between an interrupted run and its resume.

    Args:
        info (VideoInfo): the probed input (its file must exist).
        spec (OutputSpec): the output.
        upscaler (Upscaler): the method (or its stand-in): name and clip layout.
        model_options (dict): the model options; None values are left out.

    Returns:
        dict: the JSON-serialisable record: input, output, model, model_options, clip_layout, patchvsr.
    """
    stat = info.path.stat()
    return {
        "input": {"path": str(info.path.resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                  "frames": info.frames, **({"part": info.cut.span.record()} if info.cut else {})},
        "output": {"kind": spec.kind, "width": spec.width, "height": spec.height, "fps": str(spec.fps),
                   **({} if spec.codec is None else {"codec": spec.codec.codec.name, "crf": spec.codec.crf,
                                                     "preset": spec.codec.preset, "pix_fmt": spec.pix_fmt})},
        "model": upscaler.name,
        "model_options": {k: v for k, v in sorted(model_options.items()) if v is not None},
        "clip_layout": [upscaler.clip_frames, upscaler.clip_overlap],
        "patchvsr": __version__,
    }


def timed_frames(info: VideoInfo, deep: bool = False) -> Iterator[TimedFrame]:
    """The input's RGB frames with their timestamps.

    Args:
        info (VideoInfo): the probed input.
        deep (bool, *optional*, defaults to False): frames as uint16 for inputs of more than 8 bits (see
            `full_depth`).

    Yields:
        TimedFrame: (pts in `info.time_base`, (H, W, 3) uint8 or uint16 RGB).
    """
    for frame in read_frames(info, full_depth=deep):
        yield TimedFrame(frame.pts, frame.rgb)


LONG_RUN_SECONDS = 3600


def log_expected_duration(info: VideoInfo, size: HW, upscaler: Upscaler) -> None:
    """Before the first clip: the time of the whole video's model and filters at this machine's speed, timed on
    one batch of windows and one output frame (upscalers with `estimate_seconds`; skipped when info lines are
    off, e.g. -q), with a hint for runs over an hour.

    Args:
        info (VideoInfo): the probed input (its frame count).
        size (HW): (out_h, out_w) of the output frames.
        upscaler (Upscaler): the method.
    """
    if not hasattr(upscaler, "estimate_seconds") or not log.isEnabledFor(logging.INFO):
        return
    seconds = upscaler.estimate_seconds(size, info.frames, (info.height, info.width))
    log.info("expected about %s for %d frames at this machine's speed (model and filters)", duration(seconds),
             info.frames)
    if seconds > LONG_RUN_SECONDS:
        log.info("that is over an hour: --model lanczos gives a quick result, a CUDA GPU (--device cuda) a fast "
                 "one")


def duration(seconds: float) -> str:
    """A duration in words for the log: `45 s`, `34 min`, `2 h 05 min`.

    Args:
        seconds (float): the duration, >= 0.

    Returns:
        str: seconds below 90 s, minutes below an hour, else hours and minutes.
    """
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def log_plan(info: VideoInfo, spec: OutputSpec, upscaler: Upscaler) -> None:
    """Log what the run will do: input, output, model, compute dtype, and what is changed or left out.

    Args:
        info (VideoInfo): the probed input.
        spec (OutputSpec): the output.
        upscaler (Upscaler): the method (or its stand-in).
    """
    log.info("input  %s", info.describe())
    codec = "PNG frames" if spec.codec is None else spec.codec.describe()
    log.info("output %dx%d %s, model %s", spec.width, spec.height, codec, upscaler.name)
    method = upscaler.describe()
    if method.get("dtype"):
        log.info("compute dtype %s: %s", method["dtype"], method["dtype_reason"])
    if info.vfr:
        log.info("variable frame rate: every frame is kept with its own timestamp")
    chosen = spec.codec
    odd = spec.width % 2 or spec.height % 2
    if odd and chosen and chosen.pix_fmt == chosen.codec.odd_pix_fmt != chosen.codec.pix_fmt:
        log.info("odd output size %dx%d: %s 4:2:0 needs even sides, writing %s instead", spec.width,
                 spec.height, chosen.codec.label, chosen.pix_fmt)
    if info.bit_depth > 8 and not full_depth(info, spec):
        log.info("the %d-bit input is written with 8 bits per sample (%s); choose a codec and --pix-fmt of "
                 "more bits to keep them", info.bit_depth, "PNG frames" if chosen is None else chosen.describe())
    if info.hdr and (chosen is None or chosen.hdr is None):
        log.info("HDR10 metadata (%s) cannot be written into %s; --codec hevc or av1 keep it", info.hdr.describe(),
                 "PNG frames" if chosen is None else chosen.codec.label)
    if spec.kind == "png" and info.audio_streams:
        log.info("a PNG folder holds no audio: %d audio stream(s) not copied", info.audio_streams)

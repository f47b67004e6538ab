"""`patchvsr eval`: upscale a downscaled reference with each method and score it, one row per (video, method).

For each reference video and method, frames stream through (never a whole video in memory):

    reference frame (H, W, 3) uint8 ─► centre crop (--crop), then trim to multiples of K
        ─► LR: antialiased bicubic / K, rounded to uint8 [─► H.264 at --lr-crf] ─► api.upscale_stream
        ─► HR frame ─► PSNR-Y, SSIM-Y (border K), warp error (flow of the reference), NIQE, seam score

With `lr_crf`, the LR frames of the evaluated span are first written as one H.264 stream (libx264, that CRF,
preset medium, yuv420p, 25 fps) and decoded again, as a real compressed file would arrive; every method gets
the same decoded frames, so a gain over bicubic is over bicubic of the same input. The LR is small (the
span's LR frames are held in memory while encoding); the reference is streamed twice.

Methods with windows expose `window_plan(size: (out_h, out_w)) -> WindowPlan`; their `seam_score` is
`patchvsr.tiling.seams.seam_score` averaged over frames (1.0 = invisible seams), and `seam_vs_reference`
that score divided by the reference frames' own score on the same lines (image content alone moves the raw
score: the public references score 0.88-1.56 on the lines of one plan or another); others get null.
`seconds` is the time spent inside the method's clip loop (decoding and LR synthesis excluded), so
`output_mpix_per_s` is the method's throughput. `peak_rss_mb` is the process peak resident memory while the
row ran, interpreter and libraries included (Linux: the kernel's high-water mark, reset before each row;
elsewhere the process-wide peak). `seconds` excludes model loading and two warm-up clips.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange, repeat

from patchvsr.errors import InputError, OptionError
from patchvsr.eval import metrics
from patchvsr.eval.niqe import niqe, niqe_supported
from patchvsr.io.codecs import h264_uint8
from patchvsr.io.probe import VideoInfo, probe
from patchvsr.io.reader import read_frames
from patchvsr.memory import PeakMemory
from patchvsr.sizes import HW, WH

ROW_FIELDS = ("video", "method", "scale", "lr_crf", "frames", "psnr_y", "ssim_y", "warp_error", "seam_score",
              "seam_vs_reference", "niqe",
              "seconds", "output_mpix_per_s", "peak_rss_mb")
CROP_SIDES = (64, 192)  # the crop grid shows a square of min(H, W) / 3 HR pixels, clamped to this range


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate. scale: integer K >= 2; frames: first N frames (None: all); crop: (w, h) centre crop
    of the reference; methods: names for get_upscaler or Real-ESRGAN peers; device: auto | cpu | cuda;
    lr_crf: write the LR as H.264 at this CRF (0-51) and evaluate on the decoded frames (None: lossless LR)."""

    scale: int
    frames: int | None = None
    crop: WH | None = None
    methods: tuple[str, ...] = ("bicubic", "lanczos")
    device: str = "auto"
    niqe_every: int = 1
    lr_crf: int | None = None

    def __post_init__(self):
        if self.lr_crf is not None and (not isinstance(self.lr_crf, int) or not 0 <= self.lr_crf <= 51):
            raise ValueError(f"lr_crf must be an integer in [0, 51], got {self.lr_crf!r}")
        if not isinstance(self.scale, int) or self.scale < 2:
            raise ValueError(f"scale must be an integer >= 2, got {self.scale!r}")
        if self.frames is not None and self.frames < 1:
            raise ValueError(f"frames must be >= 1, got {self.frames}")
        if self.crop is not None and min(self.crop) < 2 * self.scale:
            raise ValueError(f"crop {self.crop} is smaller than two LR pixels at x{self.scale}")
        if not self.methods or len(set(self.methods)) != len(self.methods):
            raise ValueError(f"methods must be non-empty and distinct, got {self.methods}")
        if self.niqe_every < 1:
            raise ValueError(f"niqe_every must be >= 1, got {self.niqe_every}")


@dataclass
class MethodRun:
    """Result of one (video, method): the JSON row, PSNR per frame, and the crop shown in the grid."""

    row: dict
    psnr_per_frame: list[float]
    crop: np.ndarray | None


@dataclass
class EvalResult:
    """All runs, plus per video: reference crop, LR crop and crop box (top, left, side), and the scores of
    the reference itself (NIQE, warp error: what a perfect method would get)."""

    runs: list[MethodRun] = field(default_factory=list)
    reference_crops: dict[str, tuple[np.ndarray, np.ndarray, tuple[int, int, int]]] = field(default_factory=dict)
    reference: dict[str, dict] = field(default_factory=dict)  # video -> {"niqe", "warp_error"} of the reference

    @property
    def rows(self) -> list[dict]:
        return [run.row for run in self.runs]


def make_upscaler(spec: str, device: str):
    """The method `spec` ("NAME" or "NAME:OPTION=VALUE:..."), through the same registry as
    `patchvsr upscale --model`.

    Args:
        spec (str): the method and its options (see `patchvsr.methods.parse_method`).
        device (str): "auto", "cpu", "cuda" or "cuda:N".

    Returns:
        Upscaler: the method, its model loaded.

    Raises:
        OptionError: an unknown method, option or device.
        InputError: a folder that is not a trained model, or missing Real-ESRGAN weights.
    """
    from patchvsr.methods import get_upscaler, parse_method

    name, options = parse_method(spec)
    return get_upscaler(name, device=device, **options)


def crop_reference(frame: np.ndarray, config: EvalConfig) -> np.ndarray:
    """Centre crop to config.crop, then trim right/bottom to multiples of K.

    Args:
        frame (np.ndarray): (H, W, 3) uint8 RGB, a reference frame.
        config (EvalConfig): its crop (w, h) (None: no crop) and scale K.

    Returns:
        np.ndarray: (H', W', 3) uint8, a view of `frame`, H' and W' multiples of K.

    Raises:
        OptionError: the crop is larger than the frame, or the frame smaller than two LR pixels.
    """
    h, w = frame.shape[:2]
    if config.crop is not None:
        cw, ch = config.crop
        if cw > w or ch > h:
            raise OptionError(f"--crop {cw}x{ch} is larger than the {w}x{h} video")
        top, left = (h - ch) // 2, (w - cw) // 2
        frame = frame[top:top + ch, left:left + cw]
        h, w = ch, cw
    k = config.scale
    if h < 2 * k or w < 2 * k:
        raise OptionError(f"a {w}x{h} video is too small for x{k} evaluation")
    return frame[: h - h % k, : w - w % k]


def downscale(frame: np.ndarray, k: int) -> np.ndarray:
    """Downscale a frame by antialiased bicubic, rounded.

    Args:
        frame (np.ndarray): (H, W, 3) uint8 RGB, H and W multiples of k.
        k (int): the downscaling factor.

    Returns:
        np.ndarray: (H / k, W / k, 3) uint8 RGB.
    """
    x = rearrange(torch.from_numpy(frame).float(), "h w c -> 1 c h w")  # in [0, 255]
    y = F.interpolate(x, size=(frame.shape[0] // k, frame.shape[1] // k), mode="bicubic", antialias=True,
                      align_corners=False)
    return rearrange(y.round().clamp(0, 255).to(torch.uint8), "1 c h w -> h w c").numpy()


def detail_box(frame: np.ndarray, side: int, k: int) -> tuple[int, int, int]:
    """(top, left, side) of the most textured square among a 3x3 grid of candidates (corners on the LR
    grid, multiples of k), for the crop grid.

    Args:
        frame (np.ndarray): (H, W, 3) uint8 RGB, the reference frame.
        side (int): the wanted side in pixels (clamped to the frame, rounded down to a multiple of k).
        k (int): the scale factor.

    Returns:
        tuple[int, int, int]: top, left and side in pixels of `frame`, all multiples of k.
    """
    h, w = frame.shape[:2]
    side = min(side, h, w) // k * k
    luma = metrics.rgb_to_y(frame)
    candidates = [(t, l) for t in np.linspace(0, h - side, 3).astype(int) // k * k
                  for l in np.linspace(0, w - side, 3).astype(int) // k * k]
    top, left = max(candidates, key=lambda tl: np.abs(np.diff(luma[tl[0]:tl[0] + side, tl[1]:tl[1] + side])).mean())
    return int(top), int(left), side


class Reporter:
    """Where progress goes: `log(line)` once per row, `progress(description)` a context manager giving a
    callable (frames done, frames total). The default is silent; the CLI passes a rich/plain one."""

    def log(self, line: str) -> None:
        """Report one finished row (silent here).

        Args:
            line (str): the row's summary.
        """
        pass

    def progress(self, description: str):
        """A progress context for one (video, method).

        Args:
            description (str): "<video> <method>".

        Returns:
            contextlib.AbstractContextManager: yields a callable (frames done, frames total) -> None.
        """
        return contextlib.nullcontext(lambda done, total: None)


class _TimedSource:
    """Wraps the LR frame generator: remembers each reference frame and the time spent producing frames."""

    def __init__(self, pairs: Iterator[tuple[np.ndarray, np.ndarray]]):
        self.pairs = pairs
        self.pending: deque[tuple[np.ndarray, np.ndarray]] = deque()  # (reference, LR) not yet upscaled
        self.seconds = 0.0

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            start = time.perf_counter()
            try:
                ref, lr = next(self.pairs)
            except StopIteration:
                return
            finally:
                self.seconds += time.perf_counter() - start
            self.pending.append((ref, lr))
            yield lr


def _mean(values: list[float]) -> float | None:
    """Mean over frames ignoring nan (a frame pair without valid flow); None when there is nothing."""
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else None


class FrameScores:
    """Per-frame metrics of one (video, method), accumulated as HR frames stream out."""

    def __init__(self, scale: int, niqe_every: int, plan=None, score_reference: bool = False):
        self.scale, self.niqe_every, self.plan = scale, niqe_every, plan
        self.score_reference = score_reference  # also score the reference itself (once per video)
        self.reference_niqe: list[float] = []
        self.reference_warp: list[float] = []
        self.psnr: list[float] = []
        self.ssim: list[float] = []
        self.warp: list[float] = []
        self.niqe: list[float] = []
        self.seams: list[float] = []
        self.reference_seams: list[float] = []
        self.previous: tuple[np.ndarray, np.ndarray] | None = None

    def add(self, ref: np.ndarray, out: np.ndarray) -> None:
        """Score one output frame against its reference.

        Args:
            ref (np.ndarray): (H, W, 3) uint8 RGB, the reference frame.
            out (np.ndarray): (H, W, 3) uint8 RGB, the method's output frame, same size.
        """
        index = len(self.psnr)
        self.psnr.append(metrics.psnr_y(ref, out, crop=self.scale))
        self.ssim.append(metrics.ssim_y(ref, out, crop=self.scale))
        if self.previous is not None:
            flow = metrics.reference_flow(self.previous[0], ref)
            self.warp.append(metrics.warp_error_along(flow, self.previous[1], out))
            if self.score_reference:  # the floor: flow errors and real lighting changes
                self.reference_warp.append(metrics.warp_error_along(flow, self.previous[0], ref))
        self.previous = (ref, out)
        if index % self.niqe_every == 0 and niqe_supported(*out.shape[:2]):
            self.niqe.append(niqe(metrics.rgb_to_y(out)))
            if self.score_reference:
                self.reference_niqe.append(niqe(metrics.rgb_to_y(ref)))
        if self.plan is not None:
            from patchvsr.tiling.seams import seam_score

            self.seams.append(seam_score(np.ascontiguousarray(out.transpose(2, 0, 1)), self.plan))
            self.reference_seams.append(seam_score(np.ascontiguousarray(ref.transpose(2, 0, 1)), self.plan))

    def summary(self) -> dict:
        """The means over frames (nan frames ignored) of the row's metrics.

        Returns:
            dict: frames, psnr_y, ssim_y, warp_error, seam_score, seam_vs_reference, niqe (None where not scored).
        """
        relative = None
        if self.plan is not None and self.seams:
            relative = _mean(self.seams) / _mean(self.reference_seams)
        return {"frames": len(self.psnr), "psnr_y": _mean(self.psnr), "ssim_y": _mean(self.ssim),
                "warp_error": _mean(self.warp), "seam_score": _mean(self.seams) if self.plan else None,
                "seam_vs_reference": relative, "niqe": _mean(self.niqe)}


def reference_pairs(info: VideoInfo, config: EvalConfig) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(reference, LR) per frame, streamed from the video (with `config.lr_crf`, the LR frames are those of
    the H.264-compressed LR stream, see the module docstring).

    Args:
        info (VideoInfo): the probed reference video.
        config (EvalConfig): frames, crop, scale K and lr_crf.

    Returns:
        Iterator[tuple[np.ndarray, np.ndarray]]: per frame, the reference (H, W, 3) uint8 RGB (cropped, multiples
        of K) and the LR (H/K, W/K, 3) uint8 RGB.

    Raises:
        OptionError: the crop does not fit the video (see `crop_reference`).
    """
    if config.lr_crf is None:
        for ref in _references(info, config):
            yield ref, downscale(ref, config.scale)
        return
    lr = np.stack([downscale(ref, config.scale) for ref in _references(info, config)])
    compressed = h264_round_trip(lr, config.lr_crf)
    yield from zip(_references(info, config), compressed)


def _references(info: VideoInfo, config: EvalConfig) -> Iterator[np.ndarray]:
    for frame in read_frames(info):
        if config.frames is not None and frame.index >= config.frames:
            return
        yield crop_reference(frame.rgb, config)


def h264_round_trip(frames: np.ndarray, crf: int, preset: str = "medium") -> np.ndarray:
    """Frames through libx264 (yuv420p, `crf`, `preset`, one thread) and back.

    Args:
        frames (np.ndarray): (T, h, w, 3) uint8 RGB.
        crf (int): the x264 CRF, 0-51.
        preset (str, optional): the x264 preset.

    Returns:
        np.ndarray: (T, h, w, 3) uint8 RGB, the decoded frames.
    """
    return h264_uint8(frames, crf, preset=preset)


def _warm_up(upscaler, lr: np.ndarray, size: HW, calls: int = 2) -> None:
    """A clip of the first LR frame through the method, twice (PyTorch's CPU kernels settle on the second
    call), so one-off start-up costs stay out of `seconds`."""
    clip = repeat(torch.from_numpy(lr).float().div(255), "h w c -> t c h w", t=upscaler.clip_frames)
    for _ in range(calls):
        upscaler.upscale_clip(clip, size, clip_index=0)


def evaluate_method(info: VideoInfo, name: str, config: EvalConfig, grid_index: int, result: EvalResult,
                    reporter: Reporter | None = None) -> MethodRun:
    """Upscale one reference with one method, scoring frames as they stream out.

    Args:
        info (VideoInfo): the probed reference video.
        name (str): the method spec (see `make_upscaler`).
        config (EvalConfig): the evaluation settings.
        grid_index (int): the frame whose crops go into the crop grid.
        result (EvalResult): the evaluation so far; gets the video's reference scores and crops on its first
            method.
        reporter (Reporter, optional): where progress goes; None: silent.

    Returns:
        MethodRun: the row (ROW_FIELDS), PSNR-Y per frame and the method's crop (side, side, 3) uint8 (or None).

    Raises:
        InputError: the video has no frames to evaluate.
        OptionError: an unknown method or a crop that does not fit.
    """
    reporter = reporter or Reporter()
    video = info.path.stem
    upscaler = make_upscaler(name, config.device)
    pairs = reference_pairs(info, config)
    first = next(pairs, None)
    if first is None:
        raise InputError(f"{info.path}: no frames to evaluate")
    size = first[0].shape[:2]
    _warm_up(upscaler, first[1], size)
    plan_fn = getattr(upscaler, "window_plan", None)  # methods with windows score their seams
    first_pass = video not in result.reference
    scores = FrameScores(config.scale, config.niqe_every, plan_fn(size) if callable(plan_fn) else None,
                         score_reference=first_pass)
    memory = PeakMemory()
    memory.reset()
    crops: list[np.ndarray] = []
    total = min(info.frames, config.frames or info.frames)

    with reporter.progress(f"{video} {name}") as progress:
        def on_frame(index: int, ref: np.ndarray, lr: np.ndarray, out: np.ndarray) -> None:
            scores.add(ref, out)
            if index == grid_index:
                crops.append(_grid_crop(video, ref, lr, out, config.scale, result, first_pass))
            progress(index + 1, total)

        seconds = _stream(upscaler, _chain(first, pairs), size, on_frame)
    if first_pass:
        result.reference[video] = {"niqe": _mean(scores.reference_niqe), "warp_error": _mean(scores.reference_warp)}
    summary = scores.summary()
    row = {"video": video, "method": name, "scale": config.scale, "lr_crf": config.lr_crf, **summary,
           "seconds": round(seconds, 4),
           "output_mpix_per_s": round(summary["frames"] * size[0] * size[1] / 1e6 / seconds, 4),
           "peak_rss_mb": round(memory.peak_mb(), 1)}
    reporter.log(f"{video} x{config.scale} {name}: {row['frames']} frames, PSNR-Y {_fmt(row['psnr_y'])} dB, "
        f"NIQE {_fmt(row['niqe'])}, {row['seconds']:.1f} s")
    return MethodRun({key: row[key] for key in ROW_FIELDS}, scores.psnr, crops[0] if crops else None)


def _stream(upscaler, pairs: Iterator[tuple[np.ndarray, np.ndarray]], size: HW,
            on_frame: Callable[[int, np.ndarray, np.ndarray, np.ndarray], None]) -> float:
    """Run the `upscale` clip loop over the LR frames, calling on_frame(index, ref, lr, out) per HR frame.

    Returns the seconds spent inside the clip loop, minus the time the LR source took to produce frames.
    """
    from patchvsr.api import upscale_stream

    source = _TimedSource(pairs)
    hr_frames = upscale_stream(iter(source), upscaler, size)
    busy, index = 0.0, 0
    while True:
        start = time.perf_counter()
        out = next(hr_frames, None)
        busy += time.perf_counter() - start
        if out is None:
            return max(busy - source.seconds, 1e-9)
        on_frame(index, *source.pending.popleft(), out)
        index += 1


def _chain(first, rest):
    yield first
    yield from rest


def _grid_crop(video: str, ref: np.ndarray, lr: np.ndarray, out: np.ndarray, k: int, result: EvalResult,
               first_pass: bool):
    """The method's crop at the grid frame; on the first pass also pick the box and keep reference/LR crops."""
    if first_pass:
        side = int(np.clip(min(ref.shape[:2]) // 3, *CROP_SIDES))
        top, left, side = detail_box(ref, side, k)
        lr = lr[top // k:(top + side) // k, left // k:(left + side) // k]
        result.reference_crops[video] = (ref[top:top + side, left:left + side].copy(), lr.copy(), (top, left, side))
    top, left, side = result.reference_crops[video][2]
    return out[top:top + side, left:left + side].copy()


def evaluate(videos: list[Path], config: EvalConfig, reporter: Reporter | None = None) -> EvalResult:
    """Every (video, method) pair, methods in the given order; see the module docstring for the row fields.

    Args:
        videos (list[Path]): reference videos or PNG folders, with distinct file names.
        config (EvalConfig): the evaluation settings.
        reporter (Reporter, optional): where progress goes; None: silent.

    Returns:
        EvalResult: one run per (video, method), the crops and the references' own scores.

    Raises:
        OptionError: two videos share a file name, an unknown method, or a crop that does not fit.
        InputError: a video that cannot be read or has no frames.
    """
    stems = [Path(v).stem for v in videos]
    if len(set(stems)) != len(stems):
        raise OptionError(f"reference videos need distinct file names, got {', '.join(stems)}")
    result = EvalResult()
    for path in videos:
        info = probe(path)
        frames = min(info.frames, config.frames or info.frames)
        grid_index = max(frames - 1, 0) // 2  # the crop grid shows the middle frame
        for name in config.methods:
            result.runs.append(evaluate_method(info, name, config, grid_index, result, reporter))
    return result


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def markdown_table(rows: list[dict], reference: dict[str, dict] | None = None) -> str:
    """The rows as a GitHub markdown table (fidelity, temporal, perception, cost); with `reference`, a
    `(reference)` line per video gives the scores of the ground truth itself.

    Args:
        rows (list[dict]): rows of `EvalResult.rows`, grouped by video.
        reference (dict[str, dict], optional): video -> {"niqe", "warp_error"} of the reference.

    Returns:
        str: the table's lines joined by newlines.
    """
    lines = ["| video | method | frames | PSNR-Y ↑ | SSIM-Y ↑ | warp err ↓ | seam | seam / ref | NIQE ↓ | s | "
             "Mpix/s | peak RSS MB |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for index, r in enumerate(rows):
        lines.append(f"| {r['video']} | {r['method']} | {r['frames']} | {_fmt(r['psnr_y'])} | "
                     f"{_fmt(r['ssim_y'], 4)} | {_fmt(r['warp_error'])} | {_fmt(r['seam_score'])} | "
                     f"{_fmt(r.get('seam_vs_reference'))} | "
                     f"{_fmt(r['niqe'])} | {_fmt(r['seconds'], 1)} | {_fmt(r['output_mpix_per_s'])} | "
                     f"{_fmt(r['peak_rss_mb'], 0)} |")
        last_of_video = index + 1 == len(rows) or rows[index + 1]["video"] != r["video"]
        if reference and last_of_video and r["video"] in reference:
            ref = reference[r["video"]]
            lines.append(f"| {r['video']} | *(reference)* | {r['frames']} | | | {_fmt(ref['warp_error'])} | | | "
                         f"{_fmt(ref['niqe'])} | | | |")
    return "\n".join(lines)


def json_ready(value):
    """Replace non-finite floats (an exact reconstruction's infinite PSNR) by None, recursively.

    Args:
        value: a float, dict, list, tuple or any other JSON value.

    Returns:
        Any: the same structure (tuples as lists), with None for inf and nan.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return value

"""`patchvsr bench --speed`: end-to-end output Mpix/s of the default, its settings and the peers, in one run.

Every method upscales the same video with `patchvsr.api.upscale_video` into an `.mp4` (H.264, the default
output), one after another in this process, so all run with the same threads on the same machine state:

    test video (bigbuckbunny's first frames, antialiased down to 320x180, lossless; or --input)
        ─► for each method: upscale_video(video, out.mp4, scale) ─► its stats: seconds, output Mpix/s
    ratios: the default's Mpix/s over each peer's

`seconds` is the whole call: probing, loading the model, decoding, the model, the temporal filter and
encoding (what a user waits for), Python's imports aside: every model is loaded once, untimed, before the
first row, so the first row does not pay the imports (diffusers: about 7 s) for all the others.
`candidates` (`bench --speed --model NAME_OR_FOLDER`) add a row per model in training or under test, in its
default settings and in fp32, with its own ratios to the peers.
Real-ESRGAN x4plus is about 40x slower than the rest and runs on the first `SLOW_FRAMES` frames only (its
row says how many); peers whose weights are not fetched are listed as skipped.
"""

from __future__ import annotations

import dataclasses
import platform
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from patchvsr.methods import DEFAULT_MODEL

# (label, --model, model options): the default, each setting it is made of, then the classical and learned peers
METHODS = (
    ("default", DEFAULT_MODEL, {}),
    ("fusion weighted (the paper's)", DEFAULT_MODEL, {"fusion": "weighted"}),
    ("fusion none (seams)", DEFAULT_MODEL, {"fusion": "none"}),
    ("temporal radius 0", DEFAULT_MODEL, {"temporal_radius": 0}),
    ("dtype fp32", DEFAULT_MODEL, {"dtype": "fp32"}),
    ("bicubic", "bicubic", {}),
    ("lanczos", "lanczos", {}),
    ("realesrgan-animevideov3", "realesrgan-animevideov3", {}),
    ("realesrgan-x4plus", "realesrgan-x4plus", {}),
)
PEERS = ("realesrgan-animevideov3", "realesrgan-x4plus")
SLOW = {"realesrgan-x4plus"}
SLOW_FRAMES = 4
LR_SIZE = (320, 180)  # (width, height) of the test video: x4 gives 1280x720


@dataclasses.dataclass(frozen=True)
class SpeedConfig:
    """frames: frames of the test video; scale: upscaling factor; input: a video to time instead of the test
    video; device: as `patchvsr upscale --device`."""

    frames: int = 32
    scale: float = 4.0
    input: Path | None = None
    device: str = "auto"
    candidates: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.frames, int) or self.frames < SLOW_FRAMES:
            raise ValueError(f"--frames must be an integer >= {SLOW_FRAMES} for --speed, got {self.frames!r}")


def machine() -> dict:
    """The CPU and PyTorch build the figures belong to.

    Returns:
        dict: cpu (model name), cpu_capability, threads, torch (version), cuda (GPU name or None).
    """
    import torch

    from patchvsr.devices import cpu_capability

    model = platform.processor() or "unknown"
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout.splitlines()
        model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("Model name")), model)
    except OSError:
        pass
    return {"cpu": model, "cpu_capability": cpu_capability(),
            "threads": torch.get_num_threads(), "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def test_video(folder: Path, frames: int) -> Path:
    """bigbuckbunny's first `frames` frames, antialiased (area) down to LR_SIZE, as lossless FFV1 in `folder`.

    Args:
        folder (Path): where to write `speed_input.mkv`.
        frames (int): frames to keep.

    Returns:
        Path: the video, LR_SIZE (320x180) at 25 fps.
    """
    import cv2

    from patchvsr.datasets import sample_video

    small = (cv2.resize(frame, LR_SIZE, interpolation=cv2.INTER_AREA)
             for frame in _rgb_frames(sample_video("bigbuckbunny"), frames))
    return _write_lossless(folder / "speed_input.mkv", small)


def first_frames(video: Path, frames: int, folder: Path) -> Path:
    """The first `frames` frames of `video`, as lossless FFV1 in `folder` (for the slow peer).

    Args:
        video (Path): the video to cut.
        frames (int): frames to keep.
        folder (Path): where to write `first_<frames>.mkv`.

    Returns:
        Path: the shorter video, same size as `video`, at 25 fps.
    """
    return _write_lossless(folder / f"first_{frames}.mkv", _rgb_frames(video, frames))


def _rgb_frames(video: Path, count: int) -> Iterator[np.ndarray]:
    """The first `count` frames of `video` as (H, W, 3) uint8 RGB."""
    import av

    with av.open(str(video)) as source:
        for index, frame in enumerate(source.decode(video=0)):
            if index == count:
                return
            yield frame.to_ndarray(format="rgb24")


def _write_lossless(path: Path, frames: Iterable[np.ndarray]) -> Path:
    """Write (H, W, 3) uint8 RGB frames as FFV1 yuv444p at 25 fps into `path` (.mkv)."""
    import av

    with av.open(str(path), "w") as target:
        stream = None
        for rgb in frames:
            if stream is None:
                stream = target.add_stream("ffv1", rate=25)
                stream.height, stream.width = rgb.shape[:2]
                stream.pix_fmt = "yuv444p"
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")):
                target.mux(packet)
        for packet in stream.encode():
            target.mux(packet)
    return path


def run_speed(config: SpeedConfig, log: Callable[[str], None] = print) -> dict:
    """Time every METHODS row on one video.

    Args:
        config (SpeedConfig): frames, scale, input, device and candidate models.
        log (Callable[[str], None], optional): told one line per method.

    Returns:
        dict: {"machine", "input", "scale", "rows", "ratios"}; a row per method (skipped ones with the reason),
        ratios of the default's (and candidates') output Mpix/s over each peer's.
    """
    from patchvsr.api import upscale_video
    from patchvsr.errors import PatchVSRError

    rows = []
    with tempfile.TemporaryDirectory(prefix="patchvsr-speed-") as tmp:
        folder = Path(tmp)
        video = config.input or test_video(folder, config.frames)
        slow_video = first_frames(video, SLOW_FRAMES, folder)
        load_once([model for _, model, _ in methods(config.candidates)], config.device)
        for label, model, options in methods(config.candidates):
            source = slow_video if model in SLOW else video
            if options == {"dtype": "fp32"} and _default_dtype(rows, model) == "fp32":
                rows.append({"method": label, "model": model, "options": options,
                             "skipped": "the default computes in fp32 on this machine"})
                continue
            started = time.perf_counter()
            try:
                stats = upscale_video(source, folder / "out.mp4", scale=config.scale, model=model,
                                      device=config.device, overwrite=True, **options)
            except PatchVSRError as err:  # e.g. Real-ESRGAN weights not fetched
                rows.append({"method": label, "model": model, "options": options, "skipped": str(err)})
                log(f"{label}: skipped ({err})")
                continue
            row = {"method": label, "model": model, "options": options, "frames": stats["frames_this_run"],
                   "width": stats["width"], "height": stats["height"], "seconds": stats["seconds"],
                   "wall_seconds": round(time.perf_counter() - started, 3),
                   "output_mpix_per_s": stats["output_mpix_per_s"],
                   **{key: stats[key] for key in ("fusion", "dtype", "temporal_radius") if key in stats}}
            rows.append(row)
            log(f"{label}: {row['frames']} frames {row['width']}x{row['height']} in {row['seconds']:.1f} s, "
                f"{row['output_mpix_per_s']:.3f} output Mpix/s")
    speed = {row["method"]: row["output_mpix_per_s"] for row in rows if "skipped" not in row}
    leaders = ["default", *(f"candidate {name}" for name in config.candidates)]
    ratios = {f"{leader} / {peer}": round(speed[leader] / speed[peer], 3) for leader in leaders for peer in PEERS
              if peer in speed and leader in speed}
    return {"machine": machine(), "input": str(config.input or f"bigbuckbunny {config.frames} frames at "
                                              f"{LR_SIZE[0]}x{LR_SIZE[1]}"),
            "scale": config.scale, "rows": rows, "ratios": ratios}


def load_once(models: Iterable[str], device: str) -> None:
    """Load each of `models` once, untimed: the imports behind them are then paid before any row is timed.

    Args:
        models (Iterable[str]): model names or folders, as `--model` takes them (repeats are loaded once).
        device (str): as `patchvsr upscale --device`.
    """
    from patchvsr.errors import PatchVSRError
    from patchvsr.methods import get_upscaler

    for model in dict.fromkeys(models):
        try:
            get_upscaler(model, device=device)
        except PatchVSRError:  # e.g. Real-ESRGAN weights not fetched: its row says so
            pass


def methods(candidates: tuple[str, ...]) -> list[tuple[str, str, dict]]:
    """METHODS with, after the default's settings, two rows per candidate model: its defaults and fp32.

    Args:
        candidates (tuple[str, ...]): --model names or folders to time beside the default.

    Returns:
        list[tuple[str, str, dict]]: (label, --model, model options) rows, in timing order.
    """
    split = next((index for index, (label, _, _) in enumerate(METHODS) if label == "bicubic"), len(METHODS))
    extra = [row for name in candidates
             for row in ((f"candidate {name}", name, {}), (f"candidate {name}, dtype fp32", name, {"dtype": "fp32"}))]
    return [*METHODS[:split], *extra, *METHODS[split:]]


def _default_dtype(rows: list[dict], model: str) -> str | None:
    """The dtype the first timed row of `model` (its defaults) computed in."""
    return next((row.get("dtype") for row in rows if row["model"] == model and "skipped" not in row), None)


def markdown_table(result: dict) -> str:
    """The rows as a markdown table, with the machine named above it and the ratios below.

    Args:
        result (dict): what `run_speed` returned.

    Returns:
        str: markdown lines joined by newlines.
    """
    info = result["machine"]
    lines = [f"CPU: {info['cpu']}, PyTorch CPU capability {info['cpu_capability']}, {info['threads']} threads; "
             f"input: {result['input']}, x{result['scale']:g}", "",
             "| method | frames | output | dtype | seconds | output Mpix/s |", "|---|---:|---|---|---:|---:|"]
    for row in result["rows"]:
        if "skipped" in row:
            lines.append(f"| {row['method']} | | | | skipped: {row['skipped']} | |")
            continue
        lines.append(f"| {row['method']} | {row['frames']} | {row['width']}x{row['height']} | "
                     f"{row.get('dtype') or ''} | {row['seconds']:.1f} | {row['output_mpix_per_s']:.3f} |")
    lines += [""] + [f"- {name}: {value:.2f}x" for name, value in result["ratios"].items()]
    return "\n".join(lines)

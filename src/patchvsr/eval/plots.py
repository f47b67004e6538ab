"""Figures for `patchvsr eval --plots DIR`: PSNR per frame, a crop grid per video, perception vs distortion.

Matplotlib's object API (`Figure`) is used without pyplot, so nothing global changes and no display is needed.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from patchvsr.eval.evaluate import EvalResult

MARKERS = "osD^v<>ph*"


def write_plots(result: EvalResult, folder: Path) -> list[Path]:
    """Write psnr_per_frame.png, perception_distortion.png and crops_<video>.png into `folder`.

    Args:
        result (EvalResult): what `patchvsr.eval.evaluate.evaluate` returned.
        folder (Path): the output folder (created if missing).

    Returns:
        list[Path]: the files written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    written = [psnr_per_frame(result, folder / "psnr_per_frame.png"),
               perception_distortion(result, folder / "perception_distortion.png")]
    for video in result.reference_crops:
        written.append(crop_grid(result, video, folder / f"crops_{video}.png"))
    return written


def _videos(result: EvalResult) -> list[str]:
    return list(dict.fromkeys(run.row["video"] for run in result.runs))


def _methods(result: EvalResult) -> list[str]:
    return list(dict.fromkeys(run.row["method"] for run in result.runs))


def psnr_per_frame(result: EvalResult, path: Path) -> Path:
    """One panel per video, one line per method: PSNR-Y (dB) against frame index.

    Args:
        result (EvalResult): the evaluation.
        path (Path): the PNG to write.

    Returns:
        Path: `path`.
    """
    videos = _videos(result)
    fig = Figure(figsize=(6.5, 2.6 * len(videos)), layout="constrained")
    axes = fig.subplots(len(videos), 1, squeeze=False)[:, 0]
    for ax, video in zip(axes, videos):
        for run in (r for r in result.runs if r.row["video"] == video):
            values = [v if math.isfinite(v) else np.nan for v in run.psnr_per_frame]
            ax.plot(range(len(values)), values, label=run.row["method"], linewidth=1.2)
        ax.set_title(f"{video} x{result.runs[0].row['scale']}", fontsize=10)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("frame")
        ax.set_ylabel("PSNR-Y (dB)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    return path


def perception_distortion(result: EvalResult, path: Path) -> Path:
    """PSNR-Y (x, higher is better) against NIQE (y, lower is better), colour = method, marker = video.

    Args:
        result (EvalResult): the evaluation.
        path (Path): the PNG to write.

    Returns:
        Path: `path`.
    """
    fig = Figure(figsize=(6, 4.5), layout="constrained")
    ax = fig.subplots()
    points = [run.row for run in result.runs
              if run.row["niqe"] is not None and run.row["psnr_y"] is not None and math.isfinite(run.row["psnr_y"])]
    colours = {m: f"C{i % 10}" for i, m in enumerate(_methods(result))}
    markers = {v: MARKERS[i % len(MARKERS)] for i, v in enumerate(dict.fromkeys(r["video"] for r in points))}
    for row in points:
        ax.scatter(row["psnr_y"], row["niqe"], color=colours[row["method"]], marker=markers[row["video"]], s=60)
    for video, scores in result.reference.items():
        value = scores["niqe"]
        if value is not None and video in markers:
            ax.axhline(value, color="0.6", linestyle=":", linewidth=1)
            ax.annotate(f"{video} reference", (ax.get_xlim()[0], value), fontsize=7, color="0.4",
                        xytext=(2, 2), textcoords="offset points")
    handles = [ax.scatter([], [], color=c, label=m) for m, c in colours.items()]
    handles += [ax.scatter([], [], color="0.3", marker=mk, label=v) for v, mk in markers.items()]
    ax.legend(handles=handles, fontsize=8)
    ax.set_xlabel("PSNR-Y (dB)  →  more faithful")
    ax.set_ylabel("NIQE  ↓  more natural")
    ax.set_title("Perception-distortion (one point per method and video)", fontsize=10)
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=110)
    return path


def crop_grid(result: EvalResult, video: str, path: Path) -> Path:
    """Side by side at the grid frame: reference, LR (nearest-enlarged), then every method's output.

    Args:
        result (EvalResult): the evaluation, with `reference_crops[video]` set.
        video (str): the video's name (its file stem).
        path (Path): the PNG to write.

    Returns:
        Path: `path`.
    """
    ref, lr, _ = result.reference_crops[video]
    panels = [("reference", ref), ("LR input", np.kron(lr, np.ones((ref.shape[0] // lr.shape[0],
                                                                       ref.shape[1] // lr.shape[1], 1),
                                                                      dtype=np.uint8)))]
    for run in (r for r in result.runs if r.row["video"] == video and r.crop is not None):
        panels.append((f"{run.row['method']}\n{_psnr_label(run.row['psnr_y'])}", run.crop))
    fig = Figure(figsize=(2.1 * len(panels), 2.5), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, image) in zip(axes, panels):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.set_axis_off()
    fig.savefig(path, dpi=120)
    return path


def _psnr_label(value: float | None) -> str:
    return "PSNR-Y n/a" if value is None or not math.isfinite(value) else f"{value:.2f} dB (video)"

"""Figures and the markdown table of `patchvsr bench`: time and memory against output pixels, RSS vs length.

Measured points are filled markers on solid lines; estimated ones are hollow markers on dashed lines. The
dotted line of each mode is its fitted power law over the fit range, labelled with the exponent.
Matplotlib's object API (`Figure`) is used without pyplot: nothing global changes, no display is needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from patchvsr.eval.bench import CLOCKS, fit_power_law, fit_rows

COLOURS = {"weighted": "tab:blue", "average": "tab:cyan", "none": "tab:green", "shifted": "tab:orange",
           "full": "tab:red"}
LABELS = {"weighted": "patch-wise, joint modulation (weighted)", "average": "patch-wise, plain average",
          "none": "patch-wise, no auxiliary windows (none)", "shifted": "patch-wise, shifted grids",
          "full": "full-frame (one window)"}


def write_bench_plots(result: dict, folder: Path) -> list[Path]:
    """time_vs_pixels.png, memory_vs_pixels.png and (if measured) rss_vs_length.png in `folder`.

    Args:
        result (dict): what `patchvsr.eval.bench.run_bench` returned.
        folder (Path): the output folder (created if missing).

    Returns:
        list[Path]: the files written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    clock = result["settings"]["clock"]
    label = "seconds per clip" if clock == "wall" else "CPU seconds per clip"
    written = [_versus_pixels(result, CLOCKS[clock], label, folder / "time_vs_pixels.png", fit=True),
               _versus_pixels(result, "peak_rss_mb", "peak RSS per clip (MB)", folder / "memory_vs_pixels.png")]
    if result.get("rss_vs_length"):
        written.append(_rss_vs_length(result["rss_vs_length"], folder / "rss_vs_length.png"))
    return written


def _versus_pixels(result: dict, key: str, label: str, path: Path, fit: bool = False) -> Path:
    """Log-log `key` against output megapixels, one colour per mode."""
    fig = Figure(figsize=(6.5, 4.5), layout="constrained")
    ax = fig.subplots()
    for index, mode in enumerate(dict.fromkeys(r["mode"] for r in result["rows"])):
        rows = [r for r in result["rows"] if r["mode"] == mode and r[key] is not None]
        colour, name = COLOURS.get(mode, "black"), LABELS.get(mode, mode)
        measured = [r for r in rows if not r["estimated"]]
        # the dashed part starts at the last measured point
        estimated = measured[-1:] + [r for r in rows if r["estimated"]] if measured else rows
        mp = [r["pixels"] / 1e6 for r in measured]
        ax.plot(mp, [r[key] for r in measured], "o-", color=colour, label=name)
        ax.plot([r["pixels"] / 1e6 for r in estimated], [r[key] for r in estimated], "--", color=colour)
        ax.plot([r["pixels"] / 1e6 for r in estimated if r["estimated"]],
                [r[key] for r in estimated if r["estimated"]], "o", mfc="white", color=colour)
        fit_range = fit_rows(rows)
        if fit and len(fit_range) >= 2:
            exponent, coefficient = fit_power_law([r["pixels"] for r in fit_range], [r[key] for r in fit_range])
            xs = np.array([fit_range[0]["pixels"], fit_range[-1]["pixels"]], dtype=float)
            ax.plot(xs / 1e6, coefficient * xs**exponent, ":", color=colour, linewidth=3, alpha=0.5)
            ax.annotate(f"n^{exponent:.2f}", (xs[-1] / 1e6, coefficient * xs[-1] ** exponent), color=colour,
                        textcoords="offset points", xytext=(-2, -14 - 9 * index), ha="right", fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("output megapixels per frame")
    ax.set_ylabel(label)
    ax.set_title(f"{result['model'].split(' (')[0]}, {result['settings']['device']}: hollow = estimated",
                 fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    return path


def _rss_vs_length(rss: dict, path: Path) -> Path:
    """Grouped bars: peak RSS of `patchvsr upscale`, short vs long video, per method."""
    fig = Figure(figsize=(5, 3.5), layout="constrained")
    ax = fig.subplots()
    methods = list(dict.fromkeys(r["method"] for r in rss["rows"]))
    lengths = list(dict.fromkeys(r["video_seconds"] for r in rss["rows"]))
    for j, seconds in enumerate(lengths):
        values = [next((r["peak_rss_mb"] or 0 for r in rss["rows"]
                        if r["method"] == m and r["video_seconds"] == seconds), 0) for m in methods]
        ax.bar(np.arange(len(methods)) + 0.4 * j - 0.2, values, width=0.4, label=f"{seconds:g} s video")
    ax.set_xticks(range(len(methods)), [f"{m}\n{_io(rss, m)}" for m in methods], fontsize=8)
    ax.set_ylabel("peak RSS of `patchvsr upscale` (MB)")
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    return path


def _io(rss: dict, method: str) -> str:
    row = next(r for r in rss["rows"] if r["method"] == method)
    return f"{row['input']} → {row['output']}"


def _cell(row: dict | None, key: str, digits: int) -> str:
    if row is None or row[key] is None:
        return ""
    return ("≈" if row["estimated"] else "") + f"{row[key]:.{digits}f}"


def markdown_tables(result: dict) -> str:
    """Seconds and peak RSS per clip (size x mode; ≈ marks estimates), then exponents and ratios.

    Args:
        result (dict): what `patchvsr.eval.bench.run_bench` returned.

    Returns:
        str: markdown tables and lists, joined by newlines.
    """
    key = CLOCKS[result["settings"]["clock"]]
    modes = list(dict.fromkeys(r["mode"] for r in result["rows"]))
    sizes = list(dict.fromkeys((r["width"], r["height"]) for r in result["rows"]))
    by_key = {(r["mode"], r["width"], r["height"]): r for r in result["rows"]}
    unit = "s" if key == "seconds" else "CPU s"
    head = "| output | Mpix | " + " | ".join(f"{m} {unit}" for m in modes) + " | " + \
        " | ".join(f"{m} MB" for m in modes) + " |"
    lines = [head, "|---|---:|" + "---:|" * (2 * len(modes))]
    for w, h in sizes:
        cells = [_cell(by_key.get((m, w, h)), key, 2) for m in modes]
        cells += [_cell(by_key.get((m, w, h)), "peak_rss_mb", 0) for m in modes]
        lines.append(f"| {w}×{h} | {w * h / 1e6:.2f} | " + " | ".join(cells) + " |")
    seams = [m for m in modes if any(by_key.get((m, w, h), {}).get("seam_score") is not None for w, h in sizes)]
    if seams:  # measured rows only; the synthetic clip's bicubic upscale (no seams) scored on the same lines
        lines += ["", "| output | " + " | ".join(f"{m} seam / bicubic's" for m in seams) + " |",
                  "|---|" + "---:|" * len(seams)]
        for w, h in sizes:
            cells = [_number(by_key.get((m, w, h), {}).get("seam_vs_bicubic")) for m in seams]
            lines.append(f"| {w}×{h} | " + " | ".join(cells) + " |")
    lines += ["", "| mode | time exponent (fit range) | exponent, all measured sizes | memory exponent |",
              "|---|---|---:|---:|"]
    for mode, fit in result["fits"].items():
        span = " – ".join(s.replace("x", "×") for s in fit["fit_sizes"][:: max(len(fit["fit_sizes"]) - 1, 1)])
        lines.append(f"| {mode} | {_number(fit['time_exponent'])} ({span}) | "
                     f"{_number(fit['time_exponent_all_sizes'])} | {_number(fit['memory_exponent'])} |")
    lines.append("")
    for mode, ratio in result.get("ratios", {}).items():
        for where, entry in ratio.items():
            if entry is not None and (where == "largest_measured" or entry["estimated"]):  # no repeats
                lines.append(f"- full-frame / {mode} at {entry['size']} ({where.replace('_', ' ')}"
                             f"{', estimated' if entry['estimated'] else ''}): {entry['speedup']:.2f}× the time, "
                             f"{entry['memory_ratio']:.2f}× the peak RSS, {entry['clip_memory_ratio']:.2f}× the "
                             "clip's own memory")
    return "\n".join(lines + _rss_table(result.get("rss_vs_length")))


def _rss_table(rss: dict | None) -> list[str]:
    """Peak RSS of `patchvsr upscale` per method and video length."""
    if not rss:
        return []
    lengths = list(dict.fromkeys(r["video_seconds"] for r in rss["rows"]))
    lines = ["", "| upscale method | input → output | " + " | ".join(f"{s:g} s video: peak RSS MB" for s in lengths)
             + " | growth MB |", "|---|---|" + "---:|" * (len(lengths) + 1)]
    for method, growth in rss["growth"].items():
        cells = [str(next(r["peak_rss_mb"] or r["error"] for r in rss["rows"]
                          if r["method"] == method and r["video_seconds"] == s)) for s in lengths]
        change = "n/a" if growth is None else f"{growth['growth_mb']:+.1f}"
        lines.append(f"| {method} | {_io(rss, method)} | " + " | ".join(cells) + f" | {change} |")
    return lines


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"

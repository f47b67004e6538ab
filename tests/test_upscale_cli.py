"""`patchvsr upscale` as a user runs it: stats JSON, progress output, options, console script, API export."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from rich.console import Console

import patchvsr
from patchvsr import api
from patchvsr.cli import main
from patchvsr.progress import ProgressReporter, configure_logging

CONTRACT_KEYS = {"frames", "width", "height", "fps", "seconds", "output_mpix_per_s", "peak_rss_mb",
               "windows_per_clip", "steps", "model", "fusion"}


def test_stats_json(make_video, tmp_path, capsys):
    src = make_video("in.mp4", size=(20, 10), frames=6, fps=25)
    stats_path = tmp_path / "stats.json"
    assert main(["upscale", str(src), "-o", str(tmp_path / "out.mkv"), "--scale", "2.5",
                 "--stats", str(stats_path)]) == 0
    stats = json.loads(stats_path.read_text())
    assert CONTRACT_KEYS <= set(stats)
    assert (stats["frames"], stats["width"], stats["height"], stats["fps"]) == (6, 50, 25, 25.0)
    assert (stats["windows_per_clip"], stats["steps"], stats["fusion"]) == (None, None, None)
    assert stats["model"] == "bicubic"
    assert stats["seconds"] > 0 and stats["peak_rss_mb"] > 50
    mpix = 6 * 50 * 25 / 1e6
    assert stats["output_mpix_per_s"] == pytest.approx(mpix / stats["seconds"], rel=0.05, abs=2e-3)


def test_plain_log_lines_when_not_a_terminal(make_video, tmp_path, capsys):
    src = make_video("in.mkv", frames=4)
    assert main(["upscale", str(src), "-o", str(tmp_path / "out.mp4")]) == 0
    err = capsys.readouterr().err
    assert "patchvsr: input  in.mkv" in err and "patchvsr: output 128x96 H.264 crf 17" in err
    assert "patchvsr: 4/4 frames" in err and "frames/s" in err


def test_quiet_prints_nothing_on_success(make_video, tmp_path, capsys):
    assert main(["upscale", str(make_video("in.mkv", frames=2)), "-o", str(tmp_path / "o.mkv"), "-q"]) == 0
    assert capsys.readouterr().err == ""


def test_progress_bar_on_a_terminal():
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100)
    with ProgressReporter(console) as progress:
        for done in range(1, 11):
            progress(done, 10)
    text = screen.getvalue()
    assert "10/10" in text and "frames/s" in text


def progress_lines(capsys, monkeypatch, reports: list[tuple[float, int]], interval: float = 0.0) -> list[str]:
    """The plain lines a ProgressReporter off a terminal logs for `reports`, on a clock that advances one
    second per reading."""
    ticks = iter(range(1000))
    monkeypatch.setattr("patchvsr.progress.time.monotonic", lambda: float(next(ticks)))
    console = Console(file=io.StringIO(), force_terminal=False)
    configure_logging(console)
    with ProgressReporter(console, interval=interval) as progress:
        for done, total in reports:
            progress(done, total)
    return capsys.readouterr().err.splitlines()


def test_progress_lines_with_eta_off_a_terminal(capsys, monkeypatch):
    # a run reports 0 (the total) before any work
    lines = progress_lines(capsys, monkeypatch, [(0, 20), (5, 20), (10, 20), (15, 20)])
    assert [line.split(" frames,")[0] for line in lines] == ["patchvsr: 0/20", "patchvsr: 5/20", "patchvsr: 10/20",
                                                             "patchvsr: 15/20", "patchvsr: 15/20"]
    # no rate from one step (it holds the model's warm-up); then from the first step on: 5 frames in 6 s
    assert [line.split(", ")[1] for line in lines[:3]] == ["starting", "starting", "0.83 frames/s"]
    assert re.fullmatch(r"patchvsr: 10/20 frames, \d+\.\d\d frames/s, ETA 0:00:\d\d", lines[2])


@pytest.mark.parametrize("flag, value", [("--steps", "4"), ("--fusion", "weighted"), ("--seed", "1"),
                                         ("--window", "64"), ("--clip-frames", "8"), ("--batch", "2"),
                                         ("--t0", "0.5"), ("--temporal-radius", "1")])
def test_model_options_are_refused_for_classical_methods(make_video, tmp_path, capsys, flag, value):
    code = main(["upscale", str(make_video("in.mkv", frames=2)), "-o", str(tmp_path / "o.mkv"), flag, value])
    err = capsys.readouterr().err
    assert code == 2 and f"{flag} applies only to diffusion models" in err
    assert not (tmp_path / "o.mkv").exists()


def test_help_lists_every_option(capsys):
    assert main(["upscale", "--help"]) == 0
    text = capsys.readouterr().out
    for flag in ("--scale", "--size", "--model", "--crf", "--fps", "--stats", "--resume", "--overwrite",
                 "--device", "--steps", "--fusion", "--seed", "--window", "--clip-frames", "--batch", "--t0"):
        assert flag in text


def test_scale_and_size_exclude_each_other(make_video, tmp_path, capsys):
    code = main(["upscale", str(make_video("in.mkv", frames=2)), "-o", str(tmp_path / "o.mkv"),
                 "--scale", "2", "--size", "64x48"])
    assert code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_console_script(make_video, tmp_path):
    """The installed `patchvsr` command runs end to end in a fresh process."""
    script = Path(sys.executable).parent / "patchvsr"
    src = make_video("in.mkv", frames=3)
    run = subprocess.run([str(script), "upscale", str(src), "-o", f"{tmp_path / 'out'}/", "--size", "40x30"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir())[-1] == "frame_000003.png"


def test_package_exports_the_api():
    assert patchvsr.upscale_video is api.upscale_video
    assert patchvsr.upscale_stream is api.upscale_stream


def test_memory_does_not_grow_with_length():
    """Peak RSS of a 20x longer clip grows by less than 40 MB: holding its frames would add ~105 MB (114 more
    640x480 RGB frames). Each run's peak is its own (VmHWM reset at the start of upscale_video), so it varies
    by up to ~20 MB between runs (allocator and decoder threads); a ratio of peaks would hide or inflate that."""
    from patchvsr.eval.bench_rss import upscale_command
    from patchvsr.io.synth import write_test_video

    peaks = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, frames in (("short", 6), ("long", 120)):
            stem = Path(folder) / name
            src = write_test_video(stem.with_suffix(".mkv"), size=(160, 120), frames=frames)
            command = upscale_command(src, stem.with_name(name + "_out.mkv"), stem.with_suffix(".json"),
                                      "bicubic", 4, "cpu")
            subprocess.run(command, check=True)
            stats = json.loads(stem.with_suffix(".json").read_text())
            assert stats["frames"] == frames
            peaks[name] = stats["peak_rss_mb"]
    assert peaks["long"] - peaks["short"] < 40, peaks


def test_progress_lines_show_whole_frames_for_reports_inside_a_clip(capsys, monkeypatch):
    line = progress_lines(capsys, monkeypatch, [(0, 100), (1.5, 100), (2.75, 100)])[2]
    assert re.fullmatch(r"patchvsr: 2/100 frames, \d+\.\d\d frames/s, ETA \d:\d\d:\d\d", line), line


def test_the_first_rate_is_logged_at_once_then_every_interval(capsys, monkeypatch):
    # the clock advances a second per reading, a few per report: 8 reports stay within the 10 s interval
    reports = [(0, 100), (0.5, 100), (1.0, 100), (1.5, 100), (2.0, 100), (2.5, 100), (3.0, 100), (3.5, 100)]
    lines = progress_lines(capsys, monkeypatch, reports, interval=10.0)
    # the third report is the first with a rate (the second starts it): its line comes at once, with an ETA
    assert re.fullmatch(r"patchvsr: 1/100 frames, \d+\.\d\d frames/s, ETA \d:\d\d:\d\d", lines[0])
    assert len(lines) == 2 and lines[1].startswith("patchvsr: 3/100 frames")  # then only the final line


def test_final_line_of_a_one_step_run_has_a_rate(capsys, monkeypatch):
    lines = progress_lines(capsys, monkeypatch, [(0, 4), (4, 4)], interval=100.0)  # one clip: a single step
    assert len(lines) == 1 and re.fullmatch(r"patchvsr: 4/4 frames, \d+\.\d\d frames/s", lines[0])

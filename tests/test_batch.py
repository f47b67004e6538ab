"""`patchvsr batch`: many inputs into one folder, one output per input, failures reported but not fatal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from patchvsr import batch
from patchvsr.api import upscale_video
from patchvsr.batch import BatchError, batch_outputs, upscale_batch
from patchvsr.cli import main
from patchvsr.errors import OptionError
from patchvsr.methods import get_upscaler


def test_each_input_gets_the_single_run_output(make_video, tmp_path, decode_video):
    clip, frames = make_video("clip.mp4", size=(12, 8), frames=5), make_video("frames", size=(6, 6), frames=3)
    summary = upscale_batch([clip, frames], tmp_path / "out", fmt="mkv", scale=2)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip.mkv", "frames.mkv"]
    upscale_video(clip, tmp_path / "single.mkv", scale=2)
    np.testing.assert_array_equal(decode_video(tmp_path / "out" / "clip.mkv"), decode_video(tmp_path / "single.mkv"))
    assert decode_video(tmp_path / "out" / "frames.mkv").shape == (3, 12, 12, 3)
    assert [v["frames"] for v in summary["videos"]] == [5, 3] and summary["failed"] == []


def test_a_bad_input_is_reported_and_the_others_are_written(make_video, tmp_path, capsys):
    good, bad = make_video("good.mp4", frames=2), tmp_path / "bad.mp4"
    bad.write_text("not a video")
    code = main(["batch", str(bad), str(good), "-o", str(tmp_path / "out"), "--format", "png",
                 "--stats", str(tmp_path / "stats.json")])
    err = capsys.readouterr().err
    assert code == 2 and "bad.mp4: not a video" in err and "1 of 2 inputs failed" in err.splitlines()[-1]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good"]
    assert len(list((tmp_path / "out" / "good").iterdir())) == 2
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert [v["output"] for v in stats["videos"]] == [str(tmp_path / "out" / "good")]
    assert stats["failed"][0]["input"] == str(bad)


def test_existing_outputs_need_overwrite(make_video, tmp_path):
    src = make_video("a.mkv", frames=2)
    upscale_batch([src], tmp_path / "out", fmt="mkv")
    with pytest.raises(BatchError, match="1 of 1 inputs failed"):
        upscale_batch([src], tmp_path / "out", fmt="mkv")
    assert upscale_batch([src], tmp_path / "out", fmt="mkv", overwrite=True)["videos"][0]["frames"] == 2


def test_two_inputs_with_one_output_name_are_refused(tmp_path):
    with pytest.raises(OptionError, match="would both be written"):
        batch_outputs([tmp_path / "x" / "a.mp4", tmp_path / "y" / "a.mkv"], tmp_path / "out")
    with pytest.raises(OptionError, match="--format"):
        batch_outputs([tmp_path / "a.mp4"], tmp_path / "out", fmt="avi")
    assert batch_outputs([tmp_path / "a.b.mp4"], tmp_path / "o", "mp4") == [(tmp_path / "a.b.mp4",
                                                                            tmp_path / "o" / "a.b.mp4")]


class Hog:
    """Bicubic that holds `mb` MB while upscaling the first clip it gets, to make one input's peak memory stand out."""

    def __init__(self, inner, mb: int):
        self.inner, self.mb = inner, mb
        self.name, self.clip_frames, self.clip_overlap = inner.name, inner.clip_frames, inner.clip_overlap

    def upscale_clip(self, clip, size, clip_index):
        if self.mb:
            hog = torch.ones(self.mb * 2**18)  # float32: mb MB, every page touched
            self.mb = 0
            del hog
        return self.inner.upscale_clip(clip, size, clip_index)

    def describe(self):
        return self.inner.describe()


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's resettable VmHWM")
def test_model_loaded_once_and_each_input_reports_its_own_peak_memory(make_video, tmp_path, monkeypatch):
    loads = []

    def load(name=None, device="auto", **options):
        loads.append(name)
        return Hog(get_upscaler("bicubic", device="cpu"), mb=600)

    monkeypatch.setattr(batch, "get_upscaler", load)
    inputs = [make_video(f"{name}.mkv", frames=2) for name in ("first", "second", "third")]
    summary = upscale_batch(inputs, tmp_path / "out", fmt="mkv", scale=2)
    assert loads == [None]  # once for three inputs
    peaks = [video["peak_rss_mb"] for video in summary["videos"]]
    assert peaks[0] > peaks[1] + 400 and abs(peaks[1] - peaks[2]) < 200, peaks


class InlinePool:
    """Stands in for ProcessPoolExecutor: records how it was made and runs the workers' code in this process."""

    made: list = []

    def __init__(self, max_workers, mp_context, initializer, initargs):
        self.made.append((max_workers, mp_context.get_start_method(), initargs[0]))
        initializer(*initargs)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        batch._worker.clear()

    def map(self, function, *iterables):
        return map(function, *iterables)


def test_jobs_without_ray_run_that_many_worker_processes(make_video, tmp_path, monkeypatch):
    monkeypatch.setattr(batch, "ProcessPoolExecutor", InlinePool)
    monkeypatch.setattr(batch.os, "cpu_count", lambda: 4)
    inputs = [make_video(f"v{i}.mkv", frames=2) for i in range(3)]
    summary = upscale_batch(inputs, tmp_path / "out", fmt="mkv", scale=2, jobs=2)
    assert InlinePool.made == [(2, "spawn", 2)]  # 2 workers, spawned, 4 cores / 2 threads each
    assert [Path(v["output"]).name for v in summary["videos"]] == ["v0.mkv", "v1.mkv", "v2.mkv"]


def test_jobs_in_worker_processes_give_the_same_files(make_video, tmp_path, decode_video):
    inputs = [make_video("a.mp4", size=(12, 8), frames=5, audio=True), make_video("b.mkv", frames=3)]
    upscale_batch(inputs, tmp_path / "one", fmt="mkv", scale=2, jobs=1)
    summary = upscale_batch(inputs, tmp_path / "two", fmt="mkv", scale=2, jobs=2)
    assert [v["frames"] for v in summary["videos"]] == [5, 3]
    for name in ("a.mkv", "b.mkv"):
        np.testing.assert_array_equal(decode_video(tmp_path / "two" / name), decode_video(tmp_path / "one" / name))


def test_a_bad_model_fails_the_batch_once_before_any_input(make_video, tmp_path, capsys):
    code = main(["batch", str(make_video("a.mkv", frames=2)), "-o", str(tmp_path / "out"), "--model", "nonsense"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "unknown model 'nonsense'" in lines[0]
    assert not (tmp_path / "out").exists()

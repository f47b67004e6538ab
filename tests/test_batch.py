"""`patchvsr batch`: many inputs into one folder, one output per input, failures reported but not fatal."""

from __future__ import annotations

import json

import numpy as np
import pytest

from patchvsr.api import upscale_video
from patchvsr.batch import BatchError, batch_outputs, upscale_batch
from patchvsr.cli import main
from patchvsr.errors import OptionError


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

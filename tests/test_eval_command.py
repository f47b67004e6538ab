"""`patchvsr eval` end to end on a tiny generated video: JSON schema, values, table, plots, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from patchvsr.cli import main
from patchvsr.eval.evaluate import ROW_FIELDS, EvalConfig, crop_reference, downscale
from patchvsr.io.synth import write_test_video


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_test_video(tmp_path_factory.mktemp("eval") / "clip.mkv", size=(50, 38), frames=4)


def test_eval_writes_schema_rows_table_and_plots(video, tmp_path, capsys):
    out, plots = tmp_path / "eval.json", tmp_path / "plots"
    code = main(["eval", str(video), "--scale", "2", "--frames", "3", "--methods", "bicubic,lanczos",
                 "--json", str(out), "--plots", str(plots)])
    assert code == 0
    data = json.loads(out.read_text())
    rows = data["rows"]
    assert [(r["video"], r["method"]) for r in rows] == [("clip", "bicubic"), ("clip", "lanczos")]
    for row in rows:
        assert tuple(row) == ROW_FIELDS
        assert row["scale"] == 2 and row["frames"] == 3
        assert 20 < row["psnr_y"] < 60 and 0.5 < row["ssim_y"] <= 1
        assert row["warp_error"] >= 0 and row["seam_score"] is None
        assert row["niqe"] is None  # 50x38 is below NIQE's 193x193
        assert row["seconds"] > 0 and row["output_mpix_per_s"] > 0 and row["peak_rss_mb"] > 10
    assert data["reference"]["clip"]["niqe"] is None
    assert data["reference"]["clip"]["warp_error"] > 0  # the stripes move in ways DIS cannot follow
    table = capsys.readouterr().out
    assert table.count("| clip |") == 3 and "| clip | *(reference)* |" in table and "PSNR-Y" in table
    assert sorted(p.name for p in plots.iterdir()) == ["crops_clip.png", "perception_distortion.png",
                                                      "psnr_per_frame.png"]


def test_eval_psnr_is_the_mean_of_frame_psnr(video, tmp_path):
    """The row value equals the metric recomputed here from the same LR synthesis and bicubic upscaling."""
    from patchvsr.eval.metrics import psnr_y
    from patchvsr.io.probe import probe
    from patchvsr.io.reader import read_frames

    out = tmp_path / "eval.json"
    assert main(["eval", str(video), "--scale", "2", "--crop", "40x30", "--methods", "bicubic",
                 "--json", str(out)]) == 0
    row = json.loads(out.read_text())["rows"][0]
    config = EvalConfig(scale=2, crop=(40, 30))
    values = []
    for frame in read_frames(probe(video)):
        ref = crop_reference(frame.rgb, config)
        lr = torch.from_numpy(downscale(ref, 2)).permute(2, 0, 1)[None].float() / 255
        hr = torch.nn.functional.interpolate(lr, size=ref.shape[:2], mode="bicubic", align_corners=False)
        hr = (hr[0].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        values.append(psnr_y(ref, hr, crop=2))
    assert row["frames"] == 4
    assert row["psnr_y"] == pytest.approx(np.mean(values), abs=0.02)


def test_crop_and_downscale_shapes():
    frame = np.zeros((38, 50, 3), np.uint8)
    assert crop_reference(frame, EvalConfig(scale=4)).shape == (36, 48, 3)
    assert crop_reference(frame, EvalConfig(scale=3, crop=(31, 20))).shape == (18, 30, 3)
    flat = np.full((8, 12, 3), 77, np.uint8)
    np.testing.assert_array_equal(downscale(flat, 4), np.full((2, 3, 3), 77, np.uint8))


@pytest.mark.parametrize(("argv", "message"), [
    (["--methods", "nosuch"], "unknown model"),
    (["--scale", "1"], "scale must be an integer >= 2"),
    (["--crop", "400x400"], "larger than"),
    (["--json", "/nonexistent/dir/x.json"], "cannot write"),
    (["--plots", __file__], "is not a folder"),
])
def test_eval_errors_are_one_line(video, tmp_path, capsys, argv, message):
    base = {"--scale": "2", "--json": str(tmp_path / "e.json")}
    for flag, value in zip(argv[::2], argv[1::2]):
        base[flag] = value
    args = ["eval", str(video), *[item for pair in base.items() for item in pair]]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "e.json").exists()


def test_missing_reference_is_an_input_error(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "none.mp4"), "--scale", "2", "--json", str(tmp_path / "e.json")]) == 2
    assert "not found" in capsys.readouterr().err


def test_sample_videos_resolve_by_name(tmp_path):
    from patchvsr.errors import InputError
    from patchvsr.commands.evaluate import resolve_video

    assert resolve_video("bikes").name == "bikes.mp4" and resolve_video("bikes").is_file()
    with pytest.raises(InputError, match="unknown sample video"):
        resolve_video("nosuch")

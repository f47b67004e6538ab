"""`patchvsr preview`: one PNG with the input crop, bicubic and the model side by side, and the job's estimate."""

from __future__ import annotations

import functools
import importlib

import numpy as np
import pytest
from PIL import Image

from patchvsr.cli import main
from patchvsr.preview import GAP, LABEL_HEIGHT, preview
from test_bad_input import listing


def panels(path, side: int) -> list[np.ndarray]:
    image = np.asarray(Image.open(path).convert("RGB"))[LABEL_HEIGHT:]
    return [image[:, i * (side + GAP):i * (side + GAP) + side] for i in range(3)]


def test_the_preview_shows_input_bicubic_and_model_of_the_chosen_moment(make_video, tmp_path):
    src = make_video("in.mp4", size=(48, 32), frames=20, fps=10)
    result = preview(src, tmp_path / "cmp.png", at="1.05", model="lanczos", crop=24)
    assert result.at == pytest.approx(1.1) and result.box[2] == 24 and result.model == "lanczos"
    assert result.job_seconds > 0
    with Image.open(tmp_path / "cmp.png") as image:
        assert image.size == (3 * 96 + 2 * GAP, 96 + LABEL_HEIGHT)
    crop, bicubic, lanczos = panels(tmp_path / "cmp.png", 96)
    assert np.array_equal(crop[::4, ::4], crop[1::4, 1::4])             # the input, pixels repeated 4x4
    assert not np.array_equal(bicubic, lanczos) and np.abs(bicubic.astype(int) - lanczos).mean() < 8


def test_the_embedded_model_previews_too(make_video, tmp_path):
    src = make_video("in.mp4", size=(48, 32), frames=4)
    result = preview(src, tmp_path / "cmp.png", model="tiny", crop=16, scale=2)
    _, bicubic, tiny = panels(tmp_path / "cmp.png", 32)
    assert result.model == "tiny" and not np.array_equal(bicubic, tiny)


@pytest.mark.parametrize("options, words", [(("--at", "10"), ("past the end",)), (("--crop", "4"), ("--crop",))])
def test_bad_previews_are_one_line_errors(capsys, make_video, tmp_path, options, words):
    src = make_video("in.mp4", size=(32, 24), frames=5, fps=25)
    code = main(["preview", str(src), "-o", str(tmp_path / "cmp.png"), *options])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and all(word in lines[0] for word in words), lines
    assert listing(tmp_path) == {"in.mp4"}


def test_the_preview_is_a_png_and_keeps_an_existing_one(capsys, make_video, tmp_path):
    src = make_video("in.mp4", size=(32, 24), frames=2)
    assert main(["preview", str(src), "-o", str(tmp_path / "cmp.jpg")]) == 2
    (tmp_path / "cmp.png").write_bytes(b"mine")
    assert main(["preview", str(src), "-o", str(tmp_path / "cmp.png")]) == 2
    assert (tmp_path / "cmp.png").read_bytes() == b"mine"
    assert main(["preview", str(src), "-o", str(tmp_path / "cmp.png"), "--overwrite"]) == 0
    assert "the whole job needs about" in capsys.readouterr().out


def test_the_preview_demuxes_the_input_once(make_video, tmp_path, monkeypatch):
    """It probes twice (the whole file for its length, then the moment): the packet scan is not repeated."""
    probe_module = importlib.import_module("patchvsr.io.probe")   # the package exports `probe`, the function
    src = make_video("long.mp4", size=(48, 32), frames=12, fps=10)
    scans = []
    original = probe_module._scan_file.__wrapped__
    monkeypatch.setattr(probe_module, "_scan_file", functools.lru_cache(maxsize=4)(
        lambda *key: scans.append(key) or original(*key)))
    preview(src, tmp_path / "cmp.png", model="lanczos", crop=16)
    assert len(scans) == 1
    src.write_bytes(src.read_bytes() + b"\0")                           # another file now: scanned again
    preview(src, tmp_path / "cmp2.png", model="lanczos", crop=16)
    assert len(scans) == 2

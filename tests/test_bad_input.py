"""Bad input never crashes and never loses data: one-line error, non-zero exit, nothing left behind,
input untouched. Edge cases that are valid (1 frame, 1×1 pixels) are upscaled correctly."""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
from pathlib import Path

import pytest
import torch

from patchvsr.cli import main
from patchvsr.io.writer import SegmentWriter


def fingerprint(path: Path | str) -> tuple:
    path = Path(path)
    data = path.read_bytes() if path.is_file() else b"".join(p.read_bytes() for p in sorted(path.iterdir()))
    return hashlib.sha256(data).hexdigest(), path.stat().st_mtime_ns


def listing(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def fails_cleanly(capsys, src: Path, dst: Path | str, *options: str, words: tuple[str, ...] = ()) -> str:
    """Run `patchvsr upscale src -o dst options`, check the failure contract, return the error line."""
    src, dst_arg, dst = Path(src), str(dst), Path(dst)
    before = fingerprint(src) if src.exists() else None
    folder = dst.parent if dst.parent.exists() else src.parent
    existing = listing(folder)
    code = main(["upscale", str(src), "-o", dst_arg, "-q", *options])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code != 0
    assert len(lines) == 1 and lines[0].startswith("patchvsr: error: "), err
    assert "Traceback" not in err
    for word in words:
        assert word.lower() in lines[0].lower(), lines[0]
    assert listing(folder) == existing  # no output, temporary file or state folder
    if before is not None:
        assert fingerprint(src) == before
    return lines[0]


def test_missing_file(capsys, tmp_path):
    fails_cleanly(capsys, tmp_path / "nope.mp4", tmp_path / "out.mp4", words=("nope.mp4", "no such file"))


def test_empty_file(capsys, tmp_path):
    src = tmp_path / "empty.mp4"
    src.touch()
    fails_cleanly(capsys, src, tmp_path / "out.mp4", words=("empty",))


def test_text_file_renamed_mp4(capsys, tmp_path):
    src = tmp_path / "notes.mp4"
    src.write_text("these are my notes, not a video\n" * 20)
    fails_cleanly(capsys, src, tmp_path / "out.mp4", words=("notes.mp4", "not a video"))


def test_audio_only_file(capsys, make_audio_only, tmp_path):
    fails_cleanly(capsys, make_audio_only(), tmp_path / "out.mp4", words=("no video stream", "audio only"))


@pytest.mark.parametrize("scale", ["1", "0.5", "-2", "nan", "inf"])
def test_scale_not_above_one(capsys, make_video, tmp_path, scale):
    fails_cleanly(capsys, make_video("in.mkv", frames=2), tmp_path / "out.mkv", "--scale", scale,
                  words=("--scale",))


@pytest.mark.parametrize("option", [("--scale", "1000"), ("--size", "100000x30"), ("--size", "9000x9000")])
def test_absurd_output_size(capsys, make_video, tmp_path, option):
    fails_cleanly(capsys, make_video("in.mkv", frames=2), tmp_path / "out.mkv", *option, words=("limit",))


@pytest.mark.parametrize("size", ["20x20", "abc", "0x50"])
def test_bad_size(capsys, make_video, tmp_path, size):
    fails_cleanly(capsys, make_video("in.mkv", frames=2), tmp_path / "out.mkv", "--size", size,
                  words=("--size",))


@pytest.mark.parametrize("option, value, words", [("--crf", "99", ("--crf",)), ("--fps", "25", ("--fps",)),
                                                  ("--model", "nonsense", ("unknown model",)),
                                                  ("--device", "cuda", ("cuda",))])
def test_bad_option(capsys, make_video, tmp_path, option, value, words):
    if option == "--device" and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    fails_cleanly(capsys, make_video("in.mkv", frames=2), tmp_path / "out.mp4", option, value, words=words)


def test_missing_output_folder(capsys, make_video, tmp_path):
    fails_cleanly(capsys, make_video("in.mkv", frames=2), tmp_path / "nowhere" / "out.mkv",
                  words=("nowhere", "does not exist"))


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder nobody may write to: chmod 555, or for root (who ignores modes) a read-only tmpfs."""
    folder = tmp_path / "locked"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)],
                      capture_output=True).returncode != 0:
        pytest.skip("running as root without permission to mount a read-only tmpfs")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_unwritable_output_folder(capsys, make_video, read_only_folder):
    fails_cleanly(capsys, make_video("in.mkv", frames=2), read_only_folder / "out.mkv",
                  words=("cannot write",))


@pytest.mark.parametrize("out", ["out.mkv", "out_frames/"])
def test_existing_output_needs_overwrite(capsys, make_video, tmp_path, decode_video, output_path, out):
    src = make_video("in.mkv", frames=3)
    dst = output_path(tmp_path, out)
    assert main(["upscale", str(src), "-o", str(dst), "-q", "--scale", "2"]) == 0
    before = fingerprint(dst)
    fails_cleanly(capsys, src, dst, words=("already exists", "--overwrite"))
    assert fingerprint(dst) == before
    assert main(["upscale", str(src), "-o", str(dst), "-q", "--overwrite"]) == 0
    assert decode_video(dst).shape == (3, 96, 128, 3)  # replaced: now ×4


def test_overwrite_refuses_a_folder_with_other_files(capsys, make_video, tmp_path):
    dst = tmp_path / "mine"
    dst.mkdir()
    (dst / "thesis.tex").write_text("precious")
    fails_cleanly(capsys, make_video("in.mkv", frames=2), dst, "--overwrite", words=("more than png",))
    assert (dst / "thesis.tex").read_text() == "precious"


@pytest.mark.parametrize("spelling", ["same", "dotted", "symlink"])
def test_output_is_input(capsys, make_video, tmp_path, spelling):
    src = make_video("in.mp4", frames=2)
    dst = {"same": src, "dotted": tmp_path / "." / "in.mp4", "symlink": tmp_path / "link.mp4"}[spelling]
    if spelling == "symlink":
        dst.symlink_to(src)
    fails_cleanly(capsys, src, dst, "--overwrite", words=("output is the input",))


def test_disk_full_simulated(capsys, make_video, tmp_path, monkeypatch):
    """The writer fails with ENOSPC half way: clean one-line error, no segment or state left."""
    written = []
    original = SegmentWriter.write

    def write(self, rgb, pts):
        if len(written) == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written.append(pts)
        original(self, rgb, pts)

    monkeypatch.setattr(SegmentWriter, "write", write)
    fails_cleanly(capsys, make_video("in.mkv", frames=40), tmp_path / "out.mp4",
                  words=("no space left",))


@pytest.fixture
def tiny_disk(tmp_path):
    folder = tmp_path / "tiny_disk"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", str(folder)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.parametrize("out", ["out.mkv", "frames_out/"])
def test_disk_full_for_real(capsys, make_video, tmp_path, tiny_disk, output_path, out):
    src = make_video("in.mkv", size=(64, 48), frames=30)
    fails_cleanly(capsys, src, output_path(tiny_disk, out), words=("no space left",))
    assert list(tiny_disk.iterdir()) == []


def test_one_frame_video_is_upscaled(make_video, tmp_path, video_facts):
    src = make_video("one.mp4", frames=1, audio=True)
    assert main(["upscale", str(src), "-o", str(tmp_path / "out.mp4"), "-q"]) == 0
    facts = video_facts(tmp_path / "out.mp4")
    assert (facts["frames"], facts["size"]) == (1, (128, 96))


@pytest.mark.parametrize("out, size", [("out.mkv", (4, 4)), ("out.mp4", (4, 4)), ("odd.mp4", (3, 3))])
def test_one_pixel_video_is_upscaled(make_video, tmp_path, decode_video, out, size):
    src = make_video("dot.mkv", size=(1, 1), frames=3)
    scale = str(size[0])
    assert main(["upscale", str(src), "-o", str(tmp_path / out), "-q", "--scale", scale]) == 0
    frames = decode_video(tmp_path / out)
    assert frames.shape == (3, size[1], size[0], 3)
    assert frames.std(axis=(1, 2)).max() < 2  # a 1×1 picture upscales to a flat one


def test_output_without_a_suffix_is_refused_and_names_the_choices(capsys, make_video, tmp_path):
    line = fails_cleanly(capsys, make_video("in.mkv", frames=2), tmp_path / "out", words=("no output format",))
    assert ".mkv" in line and ".mp4" in line and "/ for a folder" in line


@pytest.mark.parametrize("spelling", ["trailing slash", "existing empty folder"])
def test_a_folder_output_is_a_trailing_slash_or_an_existing_folder(make_video, tmp_path, spelling):
    dst = tmp_path / "frames"
    if spelling == "existing empty folder":
        dst.mkdir()
    arg = f"{dst}/" if spelling == "trailing slash" else str(dst)
    assert main(["upscale", str(make_video("in.mkv", frames=2)), "-o", arg, "-q", "--scale", "2"]) == 0
    assert sorted(p.name for p in dst.iterdir()) == ["frame_000001.png", "frame_000002.png"]

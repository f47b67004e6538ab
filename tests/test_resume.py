"""Resume: a run killed with SIGKILL at any point, restarted with --resume, decodes to identical frames.

Kills happen in a real subprocess (`os.kill(os.getpid(), SIGKILL)` at a chosen point: while a frame is
written mid-segment, right after a segment is recorded, during the final remux, before the rename, after
it) and once at an arbitrary moment from outside. The resumed run happens in this process.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from patchvsr.api import upscale_video
from patchvsr.cli import main
from patchvsr.errors import OptionError, OutputError
from patchvsr.methods import UPSCALERS

TESTS = Path(__file__).parent

KILLER = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from test_resume import TemporalNoise
from patchvsr import cli
from patchvsr.io import partial, remux, writer
from patchvsr.methods import UPSCALERS

UPSCALERS["temporal"] = lambda device, **options: TemporalNoise()
point, after = sys.argv[1], int(sys.argv[2])
calls = []

def die_after(original, count):
    def wrapped(*args, **kwargs):
        calls.append(1)
        if len(calls) > count:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(*args, **kwargs)
    return wrapped

if point == "frame":  # during the write of frame number `after`
    writer.SegmentWriter.write = die_after(writer.SegmentWriter.write, after)
elif point == "segment":  # right after progress.json records `after` segments
    record = partial.PartialRun.segment_done
    partial.PartialRun.segment_done = lambda self, i: (record(self, i), die_after(id, after - 1)(0))
elif point == "remux":  # after `after` packets of the final file
    interleave = remux._interleave
    remux._interleave = lambda *streams: map(die_after(lambda item: item, after), interleave(*streams))
elif point == "rename":  # final file complete, not yet moved into place
    partial.PartialRun.finish = die_after(partial.PartialRun.finish, 0)
elif point == "cleanup":  # moved into place, state folder not yet removed
    partial.PartialRun.remove = die_after(partial.PartialRun.remove, 0)
sys.exit(cli.main(sys.argv[3:]))
"""


class TemporalNoise:
    """Clips of 4 frames overlapping by 2; adds noise from a generator seeded by the clip index, so the
    cross-fade of a resumed run is only right if the previous clip is recomputed exactly."""

    name, clip_frames, clip_overlap = "temporal", 4, 2

    def upscale_clip(self, clip, size, clip_index):
        generator = torch.Generator().manual_seed(clip_index)
        noise = torch.rand(clip.shape[0], 3, *size, generator=generator) * 0.2
        return (torch.nn.functional.interpolate(clip, size=size, mode="bilinear") * 0.8 + noise).clamp(0, 1)

    def describe(self):
        return {"windows_per_clip": 1, "steps": 1, "fusion": None}


@pytest.fixture(autouse=True)
def temporal_model(monkeypatch):
    monkeypatch.setitem(UPSCALERS, "temporal", lambda device, **options: TemporalNoise())


def killed_run(tmp_path, point: str, after: int, args: list[str]) -> subprocess.CompletedProcess:
    script = tmp_path / "killer.py"
    script.write_text(KILLER.format(tests=str(TESTS)))
    run = subprocess.run([sys.executable, str(script), point, str(after), *args],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == -signal.SIGKILL, run.stderr
    return run


def state_folder(dst: Path) -> Path:
    return dst.parent / f".{dst.name}.patchvsr.partial"


CASES = [
    # (output, model, frames, kill point, after)
    ("out.mp4", "bicubic", 100, "frame", 60),      # mid-segment, H.264 segments of 48 frames
    ("out.mp4", "temporal", 110, "segment", 1),    # just after a segment: resume recomputes a warm-up clip
    ("out.mkv", "temporal", 60, "frame", 31),      # mid-segment, mid-clip, FFV1
    ("out.mov", "bicubic", 60, "frame", 50),       # ProRes, segments in MOV (NUT does not take it)
    ("out.webm", "bicubic", 60, "segment", 1),     # VP9, after a segment
    ("frames_out/", "temporal", 15, "frame", 7),    # PNG folder, one clip per segment
    ("out.mp4", "bicubic", 60, "remux", 30),       # during the final remux, with audio
    ("out.mkv", "bicubic", 30, "rename", 0),       # final file written, not moved into place
    ("out.mp4", "bicubic", 30, "cleanup", 0),      # moved into place, state folder still there
]


@pytest.mark.parametrize("out, model, frames, point, after", CASES)
def test_resume_after_kill_gives_identical_frames(make_video, tmp_path, decode_video, output_path, out, model,
                                                  frames, point, after):
    src = make_video("in.mp4", size=(16, 12), frames=frames, audio=True)
    reference = output_path(tmp_path / "reference", out)
    (tmp_path / "reference").mkdir()
    upscale_video(src, reference, scale=2, model=model, device="cpu")
    dst = output_path(tmp_path / "run", out)
    (tmp_path / "run").mkdir()
    args = ["upscale", str(src), "-o", str(dst), "--scale", "2", "--model", model, "--device", "cpu"]
    killed_run(tmp_path, point, after, args)
    assert state_folder(Path(dst)).is_dir()
    assert Path(dst).exists() == (point == "cleanup")

    stats = upscale_video(src, dst, scale=2, model=model, device="cpu", resume=True)
    assert np.array_equal(decode_video(dst), decode_video(reference))
    assert stats["frames"] == frames
    redone = stats["frames_this_run"]
    assert 0 < redone < frames if point in ("frame", "segment") else redone == 0
    assert sorted(p.name for p in Path(dst).parent.iterdir()) == [out.rstrip("/")]  # state folder gone
    if out == "out.mp4" and point == "remux":
        assert _audio_bytes(dst) == _audio_bytes(reference)


@pytest.mark.parametrize("out, codec", [("out.mp4", "hevc"), ("out.mkv", "av1"), ("out.mov", "h264")])
def test_resume_gives_identical_frames_for_every_codec(make_video, tmp_path, decode_video, out, codec):
    src = make_video("in.mp4", size=(16, 12), frames=100, audio=True)
    reference = tmp_path / "reference" / out
    reference.parent.mkdir()
    upscale_video(src, reference, scale=2, model="temporal", device="cpu", codec=codec)
    dst = tmp_path / "run" / out
    dst.parent.mkdir()
    killed_run(tmp_path, "frame", 70, ["upscale", str(src), "-o", str(dst), "--scale", "2", "--model", "temporal",
                                       "--device", "cpu", "--codec", codec])
    stats = upscale_video(src, dst, scale=2, model="temporal", device="cpu", codec=codec, resume=True)
    assert 0 < stats["frames_this_run"] < 100                  # the first (48-frame) segment was kept
    assert np.array_equal(decode_video(dst), decode_video(reference))


def _audio_bytes(path: Path) -> bytes:
    import av
    with av.open(str(path)) as container:
        return b"".join(bytes(p) for p in container.demux(audio=0) if p.size)


def test_kill_from_outside_at_an_arbitrary_moment(make_video, tmp_path, decode_video):
    """`kill -9` as a user would: as soon as the first segment is recorded, whatever the run is doing."""
    src = make_video("in.mkv", size=(16, 12), frames=150)
    reference = tmp_path / "reference.mp4"
    upscale_video(src, reference, model="temporal", device="cpu")
    dst = tmp_path / "run" / "out.mp4"
    dst.parent.mkdir()
    progress = state_folder(dst) / "progress.json"
    script = tmp_path / "runner.py"
    script.write_text(KILLER.format(tests=str(TESTS)))
    process = subprocess.Popen([sys.executable, str(script), "none", "0", "upscale", str(src), "-o", str(dst),
                                "--model", "temporal", "--device", "cpu", "-q"], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if progress.exists() and json.loads(progress.read_text() or "{}").get("segments_done", 0) >= 1:
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL, "the run ended before it could be killed"
    assert main(["upscale", str(src), "-o", str(dst), "--model", "temporal", "--resume", "-q"]) == 0
    assert np.array_equal(decode_video(dst), decode_video(reference))
    assert not state_folder(dst).exists()


def test_ctrl_c_keeps_the_state_for_resume(make_video, tmp_path, decode_video, monkeypatch, capsys):
    from patchvsr.io.writer import SegmentWriter

    src = make_video("in.mkv", size=(16, 12), frames=60)
    upscale_video(src, tmp_path / "reference.mkv", device="cpu")
    dst = tmp_path / "out.mkv"
    original, written = SegmentWriter.write, []

    def write(self, rgb, pts):
        if len(written) == 30:
            raise KeyboardInterrupt
        written.append(pts)
        original(self, rgb, pts)

    monkeypatch.setattr(SegmentWriter, "write", write)
    assert main(["upscale", str(src), "-o", str(dst)]) == 130
    assert "--resume" in capsys.readouterr().err and state_folder(dst).is_dir()
    monkeypatch.setattr(SegmentWriter, "write", original)
    assert main(["upscale", str(src), "-o", str(dst), "--resume", "-q"]) == 0
    assert np.array_equal(decode_video(dst), decode_video(tmp_path / "reference.mkv"))


@pytest.fixture
def interrupted(make_video, tmp_path):
    """An input and the state of a run of it killed mid-way (made in-process, as a kill leaves it)."""
    src = make_video("in.mkv", size=(16, 12), frames=60)
    dst = tmp_path / "run" / "out.mkv"
    dst.parent.mkdir()
    killed_run(tmp_path, "frame", 30, ["upscale", str(src), "-o", str(dst), "--device", "cpu"])
    return src, dst


def test_state_without_resume_is_refused(interrupted):
    src, dst = interrupted
    with pytest.raises(OutputError, match="--resume"):
        upscale_video(src, dst, device="cpu")
    assert state_folder(dst).is_dir() and not dst.exists()  # the interrupted work is kept


def test_resume_with_other_options_is_refused(interrupted):
    src, dst = interrupted
    with pytest.raises(OptionError, match="differs"):
        upscale_video(src, dst, scale=3, device="cpu", resume=True)
    assert state_folder(dst).is_dir()
    upscale_video(src, dst, device="cpu", resume=True)  # with the same options it continues
    assert dst.exists() and not state_folder(dst).exists()


def test_overwrite_discards_the_interrupted_run(interrupted):
    src, dst = interrupted
    stats = upscale_video(src, dst, device="cpu", overwrite=True)
    assert stats["frames_this_run"] == 60 and not state_folder(dst).exists()


def test_resume_without_state_starts_from_the_beginning(make_video, tmp_path):
    stats = upscale_video(make_video("in.mkv", frames=5), tmp_path / "out.mkv", device="cpu", resume=True)
    assert stats["frames_this_run"] == stats["frames"] == 5


def test_two_runs_cannot_write_one_output(make_video, tmp_path):
    from patchvsr.io.partial import PartialRun

    src, dst = make_video("in.mkv", frames=5), tmp_path / "out.mkv"
    holder = PartialRun(dst)
    holder.start({"note": "a run in progress"})
    try:
        with pytest.raises(OutputError, match="another patchvsr run"):
            upscale_video(src, dst, device="cpu", overwrite=True)
    finally:
        holder.remove()

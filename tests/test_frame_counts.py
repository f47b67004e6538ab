"""Frame counts from headers are hints: files whose header counts frames that never decode (VP9 alt-refs in
AVI) or that are cut short upscale the frames that decode, warn once naming both numbers, and exit 0; a file
from which no frame decodes stays a one-line error that leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from patchvsr.api import upscale_video
from patchvsr.cli import main
from patchvsr.io import probe, read_frames
from patchvsr.io.synth import synthetic_frame

SHOWN, HIDDEN = 24, 5
FPS = 25


def write_vp9_avi_with_hidden_frames(path: Path, shown: int = SHOWN, hidden: int = HIDDEN) -> Path:
    """VP9 in AVI with `hidden` invisible frames, each its own packet with its own index entry, plus MP3 audio.

    The hidden frames are copies of the key frame with VP9's `show_frame` bit cleared: the decoder decodes
    them (they refresh every reference with the same picture, so the frames after them decode unchanged)
    and outputs nothing, as it does for alt-ref frames. The header counts shown + hidden frames, and one
    more: FFmpeg's AVI muxer adds an empty placeholder chunk (as in files seen in the wild).
    """
    with av.open(str(path), "w") as container:
        video = container.add_stream("libvpx-vp9", rate=FPS)
        video.width, video.height, video.pix_fmt = 32, 24, "yuv420p"
        audio = container.add_stream("libmp3lame", rate=44100)
        audio.layout = "mono"
        packets = []
        for i in range(shown):
            frame = av.VideoFrame.from_ndarray(synthetic_frame(i, 32, 24), format="rgb24")
            frame.pts = i
            packets += video.encode(frame)
        packets += video.encode()
        key = bytes(packets[0])
        assert key[0] >> 6 == 2 and key[0] & 0x02  # frame marker, show_frame set (profile 0)
        hidden_key = bytes([key[0] & ~0x02]) + key[1:]
        for index, data in enumerate([key] + [hidden_key] * hidden + [bytes(p) for p in packets[1:] if p.size]):
            packet = av.Packet(data)
            packet.stream, packet.pts, packet.dts, packet.is_keyframe = video, index, index, index == 0
            container.mux(packet)
        samples = int((shown + hidden) / FPS * 44100)
        for start in range(0, samples, 1152):
            tone = 0.2 * np.sin(2 * np.pi * 440 * np.arange(start, start + 1152) / 44100, dtype=np.float32)
            frame = av.AudioFrame.from_ndarray(tone[None].astype(np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 44100, start
            container.mux(audio.encode(frame))
        container.mux(audio.encode())
    return path


@pytest.fixture
def hidden_frames_avi(tmp_path):
    return write_vp9_avi_with_hidden_frames(tmp_path / "altref.avi")


def header_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return container.streams.video[0].frames


def frame_times(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        return [float(frame.pts * frame.time_base) for frame in container.decode(video=0)]


def test_the_test_file_is_what_it_claims(hidden_frames_avi):
    with av.open(str(hidden_frames_avi)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "vp9" and stream.frames >= SHOWN + HIDDEN
        assert sum(1 for packet in container.demux(stream) if packet.size) == SHOWN + HIDDEN
    times = frame_times(hidden_frames_avi)
    assert len(times) == SHOWN and times[1] - times[0] > HIDDEN / FPS  # the hidden frames' time passes


def test_vp9_avi_with_hidden_frames_upscales_what_decodes(hidden_frames_avi, tmp_path, capsys, video_facts,
                                                          decode_video):
    dst = tmp_path / "out.mkv"
    assert main(["upscale", str(hidden_frames_avi), "-o", str(dst), "--scale", "2"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "decoded" in line]
    header = header_frames(hidden_frames_avi)
    assert warnings == [f"patchvsr: altref.avi: {SHOWN} frames decoded, its header says {header}; "
                        f"all {SHOWN} decoded frames are upscaled"]
    facts = video_facts(dst)
    assert (facts["frames"], facts["size"]) == (SHOWN, (64, 48))
    # each frame keeps its own time (the key frame is shown until the hidden ones have passed): audio in sync
    assert facts["times"] == pytest.approx(frame_times(hidden_frames_avi), abs=1e-3)
    assert facts["audio"][0][0] in ("mp3", "mp3float")  # copied (the name is the decoder's)
    assert facts["audio"][0][1] == pytest.approx((SHOWN + HIDDEN) / FPS, abs=0.06)
    decoded = np.stack([frame.rgb for frame in read_frames(probe(hidden_frames_avi))])
    assert decode_video(dst).shape == (SHOWN, 48, 64, 3) and decoded.shape == (SHOWN, 24, 32, 3)


def test_progress_total_is_the_header_until_the_end(hidden_frames_avi, tmp_path):
    reports = []
    upscale_video(hidden_frames_avi, tmp_path / "out.mkv", scale=2, progress=lambda done, total: reports.append(
        (done, total)))
    assert reports[0][1] == header_frames(hidden_frames_avi) > SHOWN and reports[-1] == (SHOWN, SHOWN)


def cut(path: Path, keep: float) -> Path:
    path.write_bytes(path.read_bytes()[:int(path.stat().st_size * keep)])
    return path


@pytest.mark.parametrize("name", ["cut.mkv", "cut.avi", "cut.webm"])
def test_cut_file_upscales_the_frames_present_and_warns(make_video, tmp_path, capsys, video_facts, name):
    src = cut(make_video(name, size=(32, 24), frames=40, audio=True), 0.5)
    present = sum(1 for _ in read_frames(probe(src)))
    capsys.readouterr()
    assert 5 < present < 40
    assert main(["upscale", str(src), "-o", str(tmp_path / "out.mkv"), "--scale", "2"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "decoded frames are upscaled" in line]
    assert len(warnings) == 1 and f"all {present} decoded" in warnings[0], warnings
    assert "header says 40" in warnings[0] or "damaged" in warnings[0] or "cut short" in warnings[0]
    assert video_facts(tmp_path / "out.mkv")["frames"] == present
    assert sorted(p.name for p in tmp_path.iterdir()) == [name, "out.mkv"]  # no state left


def test_cut_mp4_without_its_index_is_one_line_and_leaves_nothing(make_video, tmp_path, capsys):
    """PyAV writes the mp4 index (moov) at the end: a cut mp4 has no frame to decode, so it stays an error."""
    src = cut(make_video("cut.mp4", size=(32, 24), frames=40, audio=True), 0.6)
    assert main(["upscale", str(src), "-o", str(tmp_path / "out.mkv"), "-q"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "truncated" in lines[0] and lines[0].startswith("patchvsr: error: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.mp4"]


def test_matching_count_gives_no_warning(make_video, tmp_path, capsys):
    src = make_video("fine.avi", frames=12, audio=True)
    assert main(["upscale", str(src), "-o", str(tmp_path / "out.mkv"), "--scale", "2"]) == 0
    err = capsys.readouterr().err
    assert "12/12 frames" in err and "decoded" not in err


def test_damage_in_the_middle_skips_what_cannot_be_decoded(make_video, tmp_path, capsys, video_facts):
    """Scrambled bytes mid-file: the decoder rejects some packets; the rest is upscaled, as players show it."""
    src = make_video("mid.mp4", size=(64, 48), frames=40)
    data = bytearray(src.read_bytes())
    for i in range(int(len(data) * 0.4), int(len(data) * 0.6)):
        data[i] = (data[i] * 7 + 13) & 0xFF
    src.write_bytes(bytes(data))
    present = sum(1 for _ in read_frames(probe(src)))
    capsys.readouterr()
    assert main(["upscale", str(src), "-o", str(tmp_path / "out.mkv"), "-q", "--scale", "2"]) == 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "damaged" in lines[0] and f"all {present} decoded" in lines[0], lines
    assert 0 < present < 40 and video_facts(tmp_path / "out.mkv")["frames"] == present

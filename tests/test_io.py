"""Reader, writer and `upscale_video`: formats, frame counts, sizes, exact fps, audio, metadata, VFR."""

from __future__ import annotations

import logging
from fractions import Fraction

import numpy as np
import pytest
import torch

from patchvsr.api import upscale_stream, upscale_video
from patchvsr.io import probe, read_frames
from patchvsr.methods import get_upscaler

NTSC = Fraction(30000, 1001)


def reference(path, size, model="bicubic"):
    """The HR frames upscale_video must write, computed through the clip loop without any file."""
    frames = (frame.rgb for frame in read_frames(probe(path)))
    return np.stack(list(upscale_stream(frames, get_upscaler(model, device="cpu"), size)))


@pytest.mark.parametrize("name, codec", [("in.mp4", "libx264"), ("in.mkv", "ffv1"), ("in.avi", "mpeg4"),
                                         ("in.webm", "libvpx-vp9"), ("in.mov", "libx264"),
                                         ("in.mkv", "mpeg4"), ("in.nut", "ffv1")])
def test_input_formats(make_video, tmp_path, video_facts, decode_video, name, codec):
    src = make_video(name, size=(24, 16), frames=5, codec=codec)
    stats = upscale_video(src, tmp_path / "out.mkv", scale=2, device="cpu")
    facts = video_facts(tmp_path / "out.mkv")
    assert (facts["frames"], facts["size"], facts["fps"]) == (5, (48, 32), Fraction(25))
    assert (stats["frames"], stats["width"], stats["height"]) == (5, 48, 32)
    assert np.array_equal(decode_video(tmp_path / "out.mkv"), reference(src, (32, 48)))  # FFV1: lossless


@pytest.mark.parametrize("out", ["out.mkv", "out.mp4", "frames_out/"])
def test_ntsc_rate_count_and_size_kept(make_video, tmp_path, video_facts, decode_video, out):
    src = make_video("in.mp4", size=(20, 12), frames=7, fps=NTSC)
    stats = upscale_video(src, f"{tmp_path}/{out}", scale=2.5, device="cpu")
    assert stats["fps_exact"] == "30000/1001" and stats["fps"] == pytest.approx(29.97002997)
    decoded = decode_video(tmp_path / out)
    assert decoded.shape == (7, 30, 50, 3)
    if out.endswith((".mkv", ".mp4")):
        facts = video_facts(tmp_path / out)
        assert facts["fps"] == NTSC
        assert facts["times"] == pytest.approx([i * 1001 / 30000 for i in range(7)], abs=1e-3)


def test_mp4_is_visually_lossless(make_video, tmp_path, decode_video):
    """Luma PSNR against the exact frames > 40 dB (chroma is halved by 4:2:0 by design)."""
    src = make_video("in.mkv", size=(32, 24), frames=4)
    upscale_video(src, tmp_path / "out.mp4", scale=2, device="cpu")
    luma = np.array([0.299, 0.587, 0.114])
    error = (decode_video(tmp_path / "out.mp4").astype(float) - reference(src, (48, 64))) @ luma
    assert 10 * np.log10(255**2 / np.mean(error**2)) > 40


def test_audio_copied_with_same_duration(make_video, tmp_path, video_facts):
    src = make_video("in.mp4", frames=10, audio=True)
    upscale_video(src, tmp_path / "out.mp4", scale=2, device="cpu")
    (codec, seconds, _), = video_facts(tmp_path / "out.mp4")["audio"]
    (_, expected, _), = video_facts(src)["audio"]
    assert codec == "aac" and seconds == expected  # copied packets: the same samples
    assert seconds == pytest.approx(10 / 25, abs=0.03)


def test_audio_reencoded_when_container_refuses(make_video, tmp_path, video_facts, caplog):
    """PCM audio cannot go into .mp4: it is re-encoded to AAC, with a log line saying so."""
    src = make_video("in.mkv", frames=10, audio=True, audio_codec="pcm_s16le")
    with caplog.at_level(logging.INFO, logger="patchvsr"):
        upscale_video(src, tmp_path / "out.mp4", scale=2, device="cpu")
    (codec, seconds, _), = video_facts(tmp_path / "out.mp4")["audio"]
    assert codec == "aac" and seconds == pytest.approx(0.4, abs=0.05)
    assert "re-encoded to aac" in caplog.text
    upscale_video(src, tmp_path / "out.mkv", scale=2, device="cpu")  # Matroska takes PCM as it is
    assert video_facts(tmp_path / "out.mkv")["audio"][0][:2] == ("pcm_s16le", 0.4)


@pytest.mark.parametrize("out, audio", [("out.mp4", True), ("out.mkv", True), ("out.mp4", False)])
def test_title_language_rotation_kept(make_video, tmp_path, video_facts, out, audio):
    src = make_video("in.mp4", frames=3, audio=audio, title="Holiday", language="fra", rotation=90)
    upscale_video(src, tmp_path / out, scale=2, device="cpu")
    facts = video_facts(tmp_path / out)
    assert (facts["title"], facts["language"], facts["rotation"]) == ("Holiday", "fra", 90)
    assert [language for _, _, language in facts["audio"]] == (["fra"] if audio else [])


def test_png_folder_in_and_out(make_video, tmp_path, decode_video):
    src = make_video("frames_in", size=(16, 12), frames=6)
    dst = tmp_path / "frames_out"
    stats = upscale_video(src, f"{dst}/", scale=3, fps="24000/1001", device="cpu")
    names = sorted(p.name for p in dst.iterdir())
    assert names == [f"frame_{i:06d}.png" for i in range(1, 7)]
    assert np.array_equal(decode_video(dst), reference(src, (36, 48)))  # PNG: lossless
    assert stats["fps_exact"] == "24000/1001"


def test_trailing_slash_makes_a_folder_output(make_video, tmp_path):
    upscale_video(make_video("in.mkv", frames=2), f"{tmp_path / 'frames.v2'}/", device="cpu")
    assert sorted(p.name for p in (tmp_path / "frames.v2").iterdir()) == ["frame_000001.png", "frame_000002.png"]


def test_variable_frame_rate_keeps_every_timestamp(make_video, tmp_path, video_facts):
    for name in ("vfr.mkv", "vfr.mp4"):
        src = make_video(name, frames=9, vfr=True)
        assert probe(src).vfr
        upscale_video(src, tmp_path / f"out_{name}", scale=2, device="cpu")
        before, after = video_facts(src), video_facts(tmp_path / f"out_{name}")
        assert after["frames"] == before["frames"] == 9
        assert after["times"] == pytest.approx(before["times"], abs=1e-3)


def test_constant_rate_is_not_taken_for_variable(make_video):
    assert not probe(make_video("cfr.mkv", frames=9, fps=NTSC)).vfr  # millisecond timestamps jitter


def test_odd_size_mp4_is_444_and_exact(make_video, tmp_path, video_facts):
    src = make_video("in.mkv", size=(11, 7), frames=2)
    upscale_video(src, tmp_path / "odd.mp4", size="33x21", device="cpu")
    upscale_video(src, tmp_path / "even.mp4", size=(34, 22), device="cpu")
    odd, even = video_facts(tmp_path / "odd.mp4"), video_facts(tmp_path / "even.mp4")
    assert (odd["size"], odd["pix_fmt"]) == ((33, 21), "yuv444p")
    assert (even["size"], even["pix_fmt"]) == ((34, 22), "yuv420p")


def test_size_changes_aspect_by_scaling_axes_independently(make_video, tmp_path, decode_video):
    src = make_video("in.mkv", size=(16, 8), frames=2)
    upscale_video(src, tmp_path / "out.mkv", size="64x16", device="cpu")
    assert np.array_equal(decode_video(tmp_path / "out.mkv"), reference(src, (16, 64)))


def test_lanczos_is_available_and_differs_from_bicubic(make_video, tmp_path, decode_video):
    src = make_video("in.mkv", size=(16, 12), frames=2)
    stats = upscale_video(src, tmp_path / "out.mkv", model="lanczos", device="cpu")
    out = decode_video(tmp_path / "out.mkv")
    assert stats["model"] == "lanczos" and out.shape == (2, 48, 64, 3)
    assert np.array_equal(out, reference(src, (48, 64), "lanczos"))
    assert not np.array_equal(out, reference(src, (48, 64)))


@pytest.mark.parametrize("size", [(48, 64), (17, 29), (12, 100), (5, 3)])
def test_bicubic_equals_pytorch_bicubic(size):
    """The CPU path (OpenCV) matches F.interpolate(bicubic, align_corners=False), the training upsampler."""
    clip = torch.rand(2, 3, 4, 3, generator=torch.Generator().manual_seed(0))
    expected = torch.nn.functional.interpolate(clip, size=size, mode="bicubic", align_corners=False)
    out = get_upscaler("bicubic", device="cpu").upscale_clip(clip, size, 0)
    assert out.shape == (2, 3, *size) and out.dtype == torch.float32
    assert torch.allclose(out, expected.clamp(0, 1), atol=1e-5)


def test_reader_is_lazy(make_video):
    info = probe(make_video("in.mkv", frames=12))
    frames = read_frames(info)
    first = next(frames)
    assert first.index == 0 and first.rgb.shape == (24, 32, 3) and first.rgb.dtype == np.uint8
    assert sum(1 for _ in frames) == 11


class Temporal:
    """A clip method with overlap: nearest ×2 plus a per-clip offset from a generator seeded by the index."""

    name, clip_frames, clip_overlap = "temporal", 4, 2

    def upscale_clip(self, clip, size, clip_index):
        offset = torch.rand(1, generator=torch.Generator().manual_seed(clip_index)) * 0.1
        return (torch.nn.functional.interpolate(clip, size=size, mode="nearest") * 0.9 + offset).clamp(0, 1)

    def describe(self):
        return {"windows_per_clip": 1, "steps": 1, "fusion": None}


@pytest.mark.parametrize("n", [1, 3, 4, 5, 23])
def test_upscale_stream_one_frame_out_per_frame_in(n):
    frames = (np.full((2, 3, 3), i * 10, dtype=np.uint8) for i in range(n))
    out = list(upscale_stream(frames, Temporal(), (4, 6)))
    assert len(out) == n and all(f.shape == (4, 6, 3) and f.dtype == np.uint8 for f in out)


def test_upscale_stream_quantises_after_the_cross_fade():
    """Two clips fading from offset a to b give frames between them, rounded once at the end."""
    frames = [np.zeros((1, 1, 3), dtype=np.uint8)] * 6
    out = np.stack(list(upscale_stream(iter(frames), Temporal(), (1, 1))))[:, 0, 0, 0]
    a, b = (float(torch.rand(1, generator=torch.Generator().manual_seed(i))) * 0.1 for i in (0, 1))
    shared = [a + (b - a) * w for w in (1 / 3, 2 / 3)]
    expected = np.round(np.array([a, a, *shared, b, b]) * 255)
    assert np.array_equal(out, expected)


def test_upscale_stream_reports_progress():
    seen = []
    list(upscale_stream(iter([np.zeros((2, 2, 3), np.uint8)] * 3), get_upscaler("bicubic", device="cpu"),
                        (4, 4), progress=lambda done, total: seen.append(done)))
    assert seen == [1, 2, 3]

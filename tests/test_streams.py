"""What a video carries besides the picture: subtitle streams (copied, or converted where the container needs
it), chapters and attachments come through an upscale; what cannot is named in a log line."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from av.subtitles.subtitle import SubtitleSet

from patchvsr.api import upscale_video
from patchvsr.io import remux
from patchvsr.io.remux import DEFAULT_ASS_HEADER

CUES = {"subrip": ("eng", [b"Hello", b"Goodbye"]), "ass": ("fra", [b"Bonjour", b"Au revoir"])}
CHAPTERS = [{"id": 1, "start": 0, "end": 200, "time_base": Fraction(1, 1000), "metadata": {"title": "Opening"}},
            {"id": 2, "start": 200, "end": 400, "time_base": Fraction(1, 1000), "metadata": {"title": "End"}}]
FONT = b"\x00\x01\x00\x00not really a font"


def write_subtitled_mkv(path: Path, frames: int = 10) -> Path:
    """10 frames of 16×12 FFV1 at 25 fps; a SubRip (eng) and an ASS (fra) stream with cues at 0 and 0.2 s,
    100 ms each; two chapters; a font attachment."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("ffv1", rate=25)
        video.width, video.height, video.pix_fmt = 16, 12, "bgr0"
        streams = []
        for codec, (language, _) in CUES.items():
            stream = out.add_stream(codec)
            stream.metadata["language"] = language
            stream.codec_context.time_base = stream.time_base = Fraction(1, 1000)
            stream.codec_context.subtitle_header = DEFAULT_ASS_HEADER
            streams.append(stream)
        out.set_chapters(CHAPTERS)
        out.add_attachment("font.ttf", "font/ttf", FONT)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((12, 16, 3), 20 * i, np.uint8), format="rgb24")
            frame.pts = i
            for packet in video.encode(frame):
                out.mux(packet)
        for stream, (_, texts) in zip(streams, CUES.values()):
            for k, text in enumerate(texts):
                cue = SubtitleSet.create(b"0,0,Default,,0,0,0,," + text, 0, 100, pts=200 * k)
                packet = stream.codec_context.encode_subtitle(cue)
                packet.stream, packet.pts, packet.dts, packet.duration = stream, 200 * k, 200 * k, 100
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
    return path


def subtitles(path: Path) -> list[tuple[str, str, list[tuple[float, float, str]]]]:
    """(decoder, language, [(start s, duration s, text)]) of each subtitle stream, empty cues left out."""
    with av.open(str(path)) as container:
        streams = list(container.streams.subtitles)
        cues: dict[int, list] = {stream.index: [] for stream in streams}
        for packet in container.demux(*streams):
            if packet.pts is None or not packet.size:
                continue
            cue = packet.stream.codec_context.decode2(packet)
            if cue is None:  # mov_text's empty gap cues
                continue
            text = "".join(r.dialogue.decode() if hasattr(r, "dialogue") else r.ass.decode() for r in cue)
            if text.strip():
                cues[packet.stream.index].append((round(float(packet.pts * packet.time_base), 3),
                                                  round(float(packet.duration * packet.time_base), 3),
                                                  text.split(",")[-1].strip()))
        return [(s.codec_context.name, s.metadata.get("language"), cues[s.index]) for s in streams]


def chapter_titles(path: Path) -> list[tuple[float, float, str]]:
    with av.open(str(path)) as container:
        return [(float(c["start"] * c["time_base"]), float(c["end"] * c["time_base"]), c["metadata"]["title"])
                for c in container.chapters()]


EXPECTED_CUES = {language: [(round(0.2 * k, 3), 0.1, text.decode()) for k, text in enumerate(texts)]
                 for language, texts in CUES.values()}


@pytest.mark.parametrize("suffix, codecs", [("mkv", ("srt", "ssa")), ("mp4", ("mov_text", "mov_text")),
                                            ("mov", ("mov_text", "mov_text")), ("webm", ("webvtt", "webvtt"))])
def test_subtitles_and_chapters_come_through(tmp_path, caplog, suffix, codecs):
    src = write_subtitled_mkv(tmp_path / "in.mkv")
    out = tmp_path / f"out.{suffix}"
    with caplog.at_level(logging.INFO, logger="patchvsr"):
        upscale_video(src, out, scale=2)
    found = subtitles(out)
    assert [codec for codec, _, _ in found] == list(codecs)
    assert {language: cues for _, language, cues in found} == EXPECTED_CUES
    assert chapter_titles(out) == [(0.0, 0.2, "Opening"), (0.2, 0.4, "End")]
    converted = [r.getMessage() for r in caplog.records if "converted to" in r.getMessage()]
    assert len(converted) == (0 if suffix == "mkv" else 2)


def test_attachments_go_into_mkv_and_are_named_where_they_cannot(tmp_path, caplog):
    src = write_subtitled_mkv(tmp_path / "in.mkv")
    upscale_video(src, tmp_path / "out.mkv", scale=2)
    with av.open(str(tmp_path / "out.mkv")) as container:
        attachments = [(s.name, s.mimetype, bytes(s.data)) for s in container.streams.attachments]
    assert attachments == [("font.ttf", "font/ttf", FONT)]
    with caplog.at_level(logging.INFO, logger="patchvsr"):
        upscale_video(src, tmp_path / "out.mp4", scale=2)
    assert any("attachment font.ttf" in r.getMessage() and "left out" in r.getMessage() for r in caplog.records)


def write_two_audio_mkv(path: Path) -> Path:
    """Stream 0 FFV1 video, 1 Opus audio, 2 PCM audio; 0.2 s of a tone each."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("ffv1", rate=25)
        video.width, video.height, video.pix_fmt = 16, 12, "bgr0"
        audio = [out.add_stream(codec, rate=48000) for codec in ("libopus", "pcm_s16le")]
        for stream in audio:
            stream.layout = "mono"
        tone = (np.sin(np.arange(960) / 8) * 8000).astype(np.int16)[None]
        for index in range(10):
            out.mux(video.encode(av.VideoFrame.from_ndarray(np.zeros((12, 16, 3), np.uint8), format="rgb24")))
            for stream in audio:
                frame = av.AudioFrame.from_ndarray(tone, format="s16", layout="mono")
                frame.sample_rate, frame.pts = 48000, index * 960
                out.mux(stream.encode(frame))
        for stream in (video, *audio):
            out.mux(stream.encode(None))
    return path


def test_the_container_trial_reads_the_input_once_for_all_streams(tmp_path, monkeypatch):
    src = write_two_audio_mkv(tmp_path / "in.mkv")
    opened = []
    monkeypatch.setattr(remux, "open_video", lambda path: opened.append(path) or av.open(str(path)))
    assert remux._accepted_streams("webm", src, [1, 2]) == {1}         # WebM takes Opus as it is, not PCM
    assert remux._accepted_streams("matroska", src, [1, 2]) == {1, 2}
    assert opened == [src, src] and remux._accepted_streams("mp4", src, []) == set()

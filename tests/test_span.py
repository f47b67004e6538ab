"""A part of a video (`--start/--duration`, `--frames A:B`): the frames, audio, subtitle cues and chapters of that
span and nothing else, shifted to start where the video starts; bad spans are one-line errors."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from patchvsr.api import upscale_video
from patchvsr.errors import OptionError
from patchvsr.io.span import Span, parse_time
from test_bad_input import fails_cleanly
from test_streams import chapter_titles, subtitles, write_subtitled_mkv


@pytest.mark.parametrize("text, seconds", [("12.5", Fraction(25, 2)), ("0", 0), ("02:03", 123),
                                           ("1:02:03.25", Fraction(3723) + Fraction(1, 4))])
def test_times_are_seconds_or_clocks(text, seconds):
    assert parse_time(text, "--start") == seconds


@pytest.mark.parametrize("options, words", [
    (dict(start="-1"), ("--start", "negative")), (dict(start="1:xx"), ("--start", "[H:]MM:SS")),
    (dict(duration="0"), ("--duration", "longer than 0")), (dict(frames="5"), ("A:B",)),
    (dict(frames="5:5"), ("after the start",)), (dict(frames="1:4", start="1"), ("excludes",)),
])
def test_bad_spans_name_the_problem(options, words):
    with pytest.raises(OptionError) as error:
        Span.from_options(**options)
    assert all(word in str(error.value) for word in words), str(error.value)


def audio_span(path) -> tuple[float, float, int]:
    """(first packet start s, last packet end s, packets) of the first audio stream."""
    with av.open(str(path)) as container:
        packets = [p for p in container.demux(audio=0) if p.size and p.pts is not None]
    first, last = packets[0], packets[-1]
    return (float(first.pts * first.time_base), float((last.pts + last.duration) * last.time_base), len(packets))


def test_a_part_holds_the_frames_and_audio_of_its_span(make_video, tmp_path, decode_video):
    src = make_video("in.mp4", size=(16, 12), frames=50, fps=25, audio=True)
    whole = tmp_path / "whole.mkv"
    upscale_video(src, whole, scale=2)
    part = tmp_path / "part.mkv"
    stats = upscale_video(src, part, scale=2, start="0.5", duration="1")
    frames = decode_video(part)
    assert stats["frames"] == len(frames) == 25
    assert np.array_equal(frames, decode_video(whole)[13:38])            # frames at 0.52 s ... 1.48 s
    with av.open(str(part)) as container:
        times = [float(frame.time) for frame in container.decode(video=0)]
    assert times[0] == 0.0 and times[-1] == pytest.approx(0.96)
    begin, end, _ = audio_span(part)
    assert begin == pytest.approx(0.0, abs=0.03) and end == pytest.approx(1.0, abs=0.05)
    by_frames = tmp_path / "by_frames.mkv"
    upscale_video(src, by_frames, scale=2, frames="13:38")
    assert np.array_equal(decode_video(by_frames), frames)


def test_a_part_keeps_the_cues_and_chapters_of_its_span(tmp_path):
    src = write_subtitled_mkv(tmp_path / "in.mkv")          # cues at 0 and 0.2 s for 0.1 s, chapters at 0, 0.2
    part = tmp_path / "part.mkv"
    upscale_video(src, part, scale=2, start="0.12", duration="0.2")          # frames 0.12 ... 0.28 s
    assert [cues for _, _, cues in subtitles(part)] == [[(0.08, 0.1, "Goodbye")], [(0.08, 0.1, "Au revoir")]]
    assert chapter_titles(part) == [(0.0, 0.08, "Opening"), (0.08, 0.2, "End")]


def test_a_start_past_the_end_fails_cleanly(capsys, make_video, tmp_path):
    src = make_video("in.mp4", size=(16, 12), frames=10, fps=25)
    fails_cleanly(capsys, src, tmp_path / "out.mp4", "--start", "1:00", words=("past the end", "0.400 s"))
    fails_cleanly(capsys, src, tmp_path / "out.mp4", "--frames", "20:30", words=("past the end", "10 frames"))

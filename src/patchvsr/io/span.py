"""A part of a video: `--start TIME --duration D` or `--frames A:B`, resolved against the input's frame times.

Times count from the video's first frame (0 = its start, whatever timestamp the container gives it). The probe
resolves a `Span` into a `Cut` on the input's sorted video timestamps: the first frame kept is the first at or
after the start, the last the last before the end. The reader keeps the frames inside, the remuxer the audio
packets, subtitle cues and chapters inside, and everything is shifted by the same `offset` (the kept first
frame's time), so the part plays in sync from where the whole video would have started.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from patchvsr.errors import OptionError

CLOCK = re.compile(r"^(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)$")  # [H:]MM:SS[.fff]
FRAMES = re.compile(r"^(\d*):(\d*)$")


def parse_time(text: str, name: str) -> Fraction:
    """Seconds (`12.5`) or a clock (`1:02:03.5`, `02:03`) -> seconds >= 0; OptionError naming the flag.

    Args:
        text (str): the value; non-strings are converted with str().
        name (str): the flag, for the message, e.g. "--start".

    Returns:
        Fraction: the seconds, >= 0.

    Raises:
        OptionError: for another form or a negative time.
    """
    value = str(text).strip()
    match = CLOCK.match(value)
    try:
        if match:
            hours, minutes, seconds = match.groups()
            result = Fraction(int(hours or 0) * 3600 + int(minutes) * 60) + Fraction(seconds)
        else:
            result = Fraction(value)
    except (ValueError, ZeroDivisionError):
        raise OptionError(f"{name} must be seconds or [H:]MM:SS[.fff], got {text!r}") from None
    if result < 0:
        raise OptionError(f"{name} must not be negative, got {text!r}")
    return result


@dataclass(frozen=True)
class Span:
    """What the user asked for: by time (`start`, `duration` in seconds; duration None = to the end) or by
    frame numbers (`first`, `stop`: frames first..stop-1 counted from 0; stop None = to the end)."""

    start: Fraction | None = None
    duration: Fraction | None = None
    first: int | None = None
    stop: int | None = None

    @classmethod
    def from_options(cls, start: str | float | None = None, duration: str | float | None = None,
                     frames: str | None = None) -> "Span | None":
        """The span of `--start/--duration` or `--frames A:B` (None if none is given).

        Args:
            start (str or float, *optional*): seconds or [H:]MM:SS[.fff] (default 0 when `duration` is given).
            duration (str or float, *optional*): seconds or [H:]MM:SS[.fff], > 0 (None: to the end).
            frames (str, *optional*): "A:B", frames A to B-1 from 0 (either side may be empty).

        Returns:
            Span or None: the span, None if no option is given.

        Raises:
            OptionError: for `frames` with `start` or `duration`, a bad form, an empty range or a zero duration.
        """
        if frames is not None:
            if start is not None or duration is not None:
                raise OptionError("--frames excludes --start and --duration; give one or the other")
            match = FRAMES.match(str(frames).strip())
            if not match:
                raise OptionError(f"--frames must look like A:B (frames A to B-1, from 0), got {frames!r}")
            first, stop = (int(g) if g else None for g in match.groups())
            if stop is not None and stop <= (first or 0):
                raise OptionError(f"--frames {frames}: the end must come after the start")
            return cls(first=first or 0, stop=stop)
        if start is None and duration is None:
            return None
        span = cls(start=parse_time(start, "--start") if start is not None else Fraction(0),
                   duration=parse_time(duration, "--duration") if duration is not None else None)
        if span.duration == 0:
            raise OptionError("--duration must be longer than 0")
        return span

    def describe(self) -> str:
        """For the log: `frames A:B` or `S s to E s` (`the end` when open).

        Returns:
            str: one phrase.
        """
        if self.first is not None:
            return f"frames {self.first}:{'' if self.stop is None else self.stop}"
        end = "the end" if self.duration is None else f"{float(self.start + self.duration):g} s"
        return f"{float(self.start):g} s to {end}"

    def record(self) -> list:
        """For the resume record (JSON).

        Returns:
            list: [start, duration, first, stop] as strings, None where not given.
        """
        return [str(value) if value is not None else None for value in (self.start, self.duration, self.first,
                                                                          self.stop)]


@dataclass(frozen=True)
class Cut:
    """A span resolved on one input: video timestamps [low, high) in the stream's time base (high None = to the
    end), `offset` and `length` in seconds from the video's first frame, and the frames kept."""

    span: Span
    low: int
    high: int | None
    offset: Fraction
    length: Fraction | None
    frames: int

    def keeps(self, seconds: Fraction) -> bool:
        """Whether a moment (seconds from the video's first frame) lies inside the part.

        Args:
            seconds (Fraction): the moment, from the video's first frame.

        Returns:
            bool: True inside [offset, offset + length).
        """
        return self.offset <= seconds and (self.length is None or seconds < self.offset + self.length)


def resolve(span: Span, pts: np.ndarray, time_base: Fraction, fps: Fraction, what: str) -> Cut:
    """`span` on the sorted video timestamps `pts` (ticks of `time_base`); OptionError if it keeps no frame.

    Args:
        span (Span): what the user asked for.
        pts (np.ndarray): (N,) int sorted video timestamps, N >= 1.
        time_base (Fraction): seconds per tick of `pts`.
        fps (Fraction): the frame rate, for the messages.
        what (str): the input's name, for the messages.

    Returns:
        Cut: the span resolved on these timestamps.

    Raises:
        OptionError: if the span starts past the end or holds no frame.
    """
    times = [(int(p) - int(pts[0])) * time_base for p in pts]
    if span.first is not None:
        first = span.first
        stop = len(times) if span.stop is None else min(span.stop, len(times))
        if first >= len(times):
            raise OptionError(f"--frames: frame {first} is past the end of {what} ({len(times)} frames)")
    else:
        first = next((i for i, t in enumerate(times) if t >= span.start), None)
        if first is None:
            raise OptionError(f"--start {float(span.start):g} s is past the end of {what} "
                              f"({float(times[-1] + 1 / fps):.3f} s)")
        end = None if span.duration is None else span.start + span.duration
        stop = len(times) if end is None else next((i for i, t in enumerate(times) if t >= end), len(times))
        if stop <= first:
            raise OptionError(f"{span.describe()} holds no frame of {what} (frames are {float(1 / fps):.3f} s "
                              "apart)")
    offset = times[first]
    high = None if stop == len(times) else int(pts[stop])
    length = None if high is None else times[stop] - offset
    return Cut(span, int(pts[first]), high, offset, length, stop - first)


def frame_ticks(cut: Cut | None, time_base: Fraction) -> int:
    """The cut's offset in ticks of the reader's `time_base` (0 without a cut).

    Args:
        cut (Cut, *optional*): the part of the video, or None.
        time_base (Fraction): seconds per tick.

    Returns:
        int: the offset rounded to the nearest tick, >= 0.
    """
    return 0 if cut is None else math.floor(cut.offset / time_base + Fraction(1, 2))

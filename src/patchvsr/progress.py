"""Progress and log output on stderr: a rich bar (frames/s, ETA) on a terminal, plain lines otherwise."""

from __future__ import annotations

import logging
import sys
import time

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


def stderr_console() -> Console:
    """The rich console that progress and log lines go to.

    Returns:
        rich.console.Console: a console writing to stderr.
    """
    return Console(stderr=True)


def configure_logging(console: Console, quiet: bool = False) -> None:
    """Send the `patchvsr` logger to stderr: through rich on a terminal, as `patchvsr: message` otherwise.

    Args:
        console (rich.console.Console): the stderr console (`stderr_console()`).
        quiet (bool, *optional*, defaults to False): log warnings and errors only, no info lines.
    """
    logger = logging.getLogger("patchvsr")
    logger.handlers.clear()
    logger.propagate = False
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    if console.is_terminal:
        handler = RichHandler(console=console, show_time=False, show_path=False, show_level=False)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("patchvsr: %(message)s"))
    logger.addHandler(handler)


class ProgressReporter:
    """Callable `(frames done, frames total or None)`; use as a context manager around the run.

    Frames done may be fractional (reports from inside a clip); they are shown as whole frames. On a terminal
    it draws a bar with frames/s and ETA; otherwise it logs a line every `interval` seconds, one as soon as the
    first rate is known (the first line with an ETA need not wait for the next interval) and one at the end.
    """

    def __init__(self, console: Console, description: str = "upscaling", interval: float = 10.0):
        self.console, self.interval = console, interval
        self.bar = None
        if console.is_terminal:
            self.bar = Progress(TextColumn(description), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=console)
            self.task = self.bar.add_task(description, total=None, rate="")
        self.created = self.started = self.last_line = time.monotonic()
        self.initial: float | None = None     # the run's first report: frames already done, before any work
        self.first_done: float | None = None  # where the rate starts: the first report that made progress
        self.done, self.total = 0, None
        self.rate_shown = False  # whether a plain line has shown a rate yet

    def __enter__(self) -> ProgressReporter:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
        elif self.initial is not None and exc[0] is None:
            self._line(final=True)

    def __call__(self, done: float, total: int | None) -> None:
        """Report progress: update the bar, or log a line when `interval` seconds have passed since the last.

        Args:
            done (float): frames done so far, >= 0; may be fractional inside a clip.
            total (int, *optional*): frames in total, or None while unknown.
        """
        # the rate counts from the first report that made progress: the first model call's warm-up (and
        # frames done before a resume) stay out of it
        if self.initial is None:
            self.initial = done
        elif self.first_done is None and done > self.initial:
            self.first_done, self.started = done, time.monotonic()
        self.done, self.total = done, total
        if self.bar is not None:
            rate = self.rate()
            self.bar.update(self.task, completed=done, total=total,
                            rate="starting" if rate is None else f"{rate:.2f} frames/s")
        elif time.monotonic() - self.last_line >= self.interval or (not self.rate_shown and self.rate()):
            self._line()

    def rate(self) -> float | None:
        """Frames/s since the first step of progress.

        Returns:
            float, optional: frames per second; None before a second step measured one.
        """
        elapsed = time.monotonic() - self.started
        if self.first_done is None or self.done <= self.first_done or elapsed <= 0:
            return None
        return (self.done - self.first_done) / elapsed

    def overall_rate(self) -> float:
        """Frames/s since the reporter was made (warm-up included): for runs too short for `rate`.

        Returns:
            float: frames per second (0.0 before any time passed).
        """
        elapsed = time.monotonic() - self.created
        return (self.done - (self.initial or 0)) / elapsed if elapsed > 0 else 0.0

    def _line(self, final: bool = False) -> None:
        self.last_line = time.monotonic()
        rate = self.rate()
        if rate is None and final:
            rate = self.overall_rate()
        text = f"{int(self.done)}" + (f"/{self.total}" if self.total else "") + " frames, "
        text += "starting" if rate is None else f"{rate:.2f} frames/s"
        self.rate_shown = self.rate_shown or rate is not None
        if self.total and rate and self.total > self.done:
            text += f", ETA {_clock((self.total - self.done) / rate)}"
        logging.getLogger("patchvsr").info(text)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"

"""One resumable output run: clips -> segments -> assembled file -> renamed into place.

Clips are grouped into segments of `clips_per_segment` clips (about 24 frames for FFV1, 48 for the other
codecs, one clip for PNG folders); segment boundaries depend only on clip numbers, so a resumed run cuts the
same segments, encodes the same frames and decodes identically to an uninterrupted one. After each
finished segment the state records it; a resumed run starts at the first unfinished segment.

On an error the state folder and every temporary file are removed (nothing is left but the untouched
input); on Ctrl-C (KeyboardInterrupt) or a kill the state stays for `--resume`.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

from patchvsr.errors import OutputError
from patchvsr.io.partial import PartialRun
from patchvsr.io.probe import VideoInfo
from patchvsr.io.remux import assemble
from patchvsr.io.writer import OutputSpec, SegmentWriter

log = logging.getLogger("patchvsr")

SEGMENT_FRAMES = {"ffv1": 24, "png": 1}  # frames per segment by codec; 48 for the others
ClipProgress = Callable[[float], None]  # fraction done of the clip being upscaled, in [0, 1]


class HRBlock(NamedTuple):
    """The final frames of one clip: clip index, (n, out_h, out_w, 3) uint8 RGB and their n timestamps (in the
    output's time base; None for a stream read without timestamps)."""

    index: int
    frames: np.ndarray
    pts: tuple[int, ...] | None


# (start clip, ClipProgress) -> the HR blocks from that clip on
ClipSource = Callable[[int, ClipProgress], Iterator[HRBlock]]
Progress = Callable[[float, int | None], None]  # (frames done, fractional inside a clip; frames in total or None)


def clips_per_segment(spec: OutputSpec, step: int) -> int:
    """Clips per segment for an output and a clip step.

    Args:
        spec (OutputSpec): the output (its codec).
        step (int): frames between clip starts, >= 1.

    Returns:
        int: clips per segment, >= 1.
    """
    codec = "png" if spec.codec is None else spec.codec.codec.name
    return max(1, math.ceil(SEGMENT_FRAMES.get(codec, 48) / step))


class OutputRun:
    """Writes the HR clip stream of one input into `dst`, resumably.

    record: everything that shapes the output (input identity, options, clip layout); a resume must
    match it exactly. The clip source's blocks carry each frame's timestamp.
    """

    def __init__(self, dst: Path, spec: OutputSpec, info: VideoInfo, step: int, record: dict):
        self.dst, self.spec, self.info, self.step = dst, spec, info, step
        self.cps = clips_per_segment(spec, step)
        self.record = {**record, "clips_per_segment": self.cps}
        self.state = PartialRun(dst)
        self.frames_total = 0

    def interrupted_run_exists(self) -> bool:
        """Whether an interrupted run of this output left its state behind (for `--resume`).

        Returns:
            bool: True if the state folder exists.
        """
        return self.state.exists()

    def execute(self, clips: ClipSource, *, resume: bool, overwrite: bool,
                progress: Progress | None = None) -> int:
        """Run to the end and move the output into place.

        On an error the state is removed; on KeyboardInterrupt it stays for `--resume`.

        Args:
            clips (ClipSource): (start clip, ClipProgress) -> the HR blocks from that clip on.
            resume (bool): continue an interrupted run.
            overwrite (bool): discard an interrupted run.
            progress (Progress, *optional*): called with (frames done, frames in total or None).

        Returns:
            int: the frames upscaled by this call.

        Raises:
            OptionError: if a resumed run's record differs.
            OutputError: for an interrupted run without `resume` or `overwrite`, or an output that cannot be
                written.
        """
        self._open(resume, overwrite)
        try:
            written = 0
            if not self.state.record["complete"]:
                written = self._write_segments(clips, progress)
                self.state.mark("complete")
            self.frames_total = self.state.record["frames_done"]
            self.state.finish(self._assemble())
            return written
        except KeyboardInterrupt:
            self.state.release()
            log.warning("interrupted: rerun with --resume to continue from the last finished segment")
            raise
        except OSError as err:
            self.state.remove()
            raise OutputError(f"{self.dst}: cannot write output ({err.strerror or err})") from err
        except BaseException:
            self.state.remove()
            raise

    def _open(self, resume: bool, overwrite: bool) -> None:
        if not self.state.exists():
            if resume:
                log.info("no interrupted run of %s found; starting from the beginning", self.dst)
            self.state.start({**self.record, "frames_done": 0})
        elif resume:
            self.state.resume(self.record)
            log.info("resuming %s after %d finished frames", self.dst, self.state.record["frames_done"])
        elif overwrite:
            self.state.start({**self.record, "frames_done": 0})
        else:
            raise OutputError(f"{self.dst}: an interrupted run left {self.state.folder.name}; pass --resume "
                              "to continue it or --overwrite to start over")

    def _write_segments(self, clips: ClipSource, progress: Progress | None) -> int:
        first_segment = self.state.record["segments_done"]
        before = self.state.record["frames_done"]
        writer, segment, written = None, first_segment - 1, 0
        total = self.info.frames  # the probe's hint until the end is reached

        def within_clip(fraction: float) -> None:  # about `step` frames come out of each clip
            if progress is not None:
                done = before + written + fraction * self.step
                progress(min(done, total) if total else done, total)

        if progress is not None:
            progress(before, total)  # the total at once, before the first clip
        try:
            for clip_index, block, stamps in clips(first_segment * self.cps, within_clip):
                if clip_index // self.cps != segment:
                    self._close_segment(writer, segment, before + written)
                    segment = clip_index // self.cps
                    writer = self._open_segment(segment, clip_index * self.step)
                if stamps is None or len(stamps) != len(block):
                    raise RuntimeError(f"clip {clip_index}: {len(block)} frames came with "
                                       f"{'no' if stamps is None else len(stamps)} timestamps")
                for rgb, pts in zip(block, stamps):
                    writer.write(rgb, pts)
                written += len(block)
                if progress is not None:
                    progress(before + written, total)
            self._close_segment(writer, segment, before + written)
            if progress is not None:  # the end is reached: the total is what was decoded, not the hint
                progress(before + written, before + written)
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        return written

    def _open_segment(self, segment: int, first_frame: int) -> SegmentWriter:
        if self.spec.kind == "png":
            self.state.frames_folder.mkdir(exist_ok=True)
            return SegmentWriter(self.state.frames_folder, self.spec, first_frame)
        return SegmentWriter(self.state.segment_path(segment, self.spec.segment_suffix), self.spec, first_frame)

    def _close_segment(self, writer: SegmentWriter | None, segment: int, frames_done: int) -> None:
        if writer is None:
            return
        writer.close()
        self.state.record["frames_done"] = frames_done
        self.state.segment_done(segment)

    def _assemble(self) -> Path:
        """The finished output inside the state folder (or `dst`, if it was moved there already)."""
        done = self.spec.kind == "png" or self.state.record["assembled"]
        produced = self.state.frames_folder if self.spec.kind == "png" else self.state.final_path(
            f".{self.spec.kind}")
        if done and not produced.exists():
            if self.dst.exists():  # moved into place just before an interruption: nothing left to do
                return self.dst
            raise OutputError(f"{self.state.folder}: finished output is missing; delete it to start over")
        if done:
            return produced
        final = produced
        segments = [self.state.segment_path(k, self.spec.segment_suffix)
                    for k in range(self.state.record["segments_done"])]
        assemble(final, self.spec, segments, self.info)
        with open(final, "rb+") as file:
            os.fsync(file.fileno())
        self.state.mark("assembled")
        return final


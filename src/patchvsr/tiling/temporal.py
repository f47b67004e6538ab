"""Temporal clips: split a frame stream into overlapping clips and join the upscaled clips again.

Clip `i` holds the stream's frames `[i·step, i·step + T)` with `step = T - O` (T = clip_frames, O = overlap).
The last clip is padded to T frames by repeating its last real frame; the joiner drops the padding again.
Frames shared by two consecutive clips are cross-faded with a linear ramp: the j-th of the O shared frames
(j = 0..O-1) takes weight (j + 1) / (O + 1) from the newer clip and the rest from the older one, so a clip
fades in over its overlap and identical clips join to the identical stream.

Frames may carry their timestamps (`TimedFrame`): a clip keeps those of its real frames (`Clip.pts`), so the
writer gets them with the upscaled frames and no side channel is needed.

Both ends stream (generator in, generator out): at most one clip and the O held frames live in memory.
Starting at clip k (resume) skips the stream's first k·step frames; the joiner can be told that the first
clip it gets is a warm-up whose frames only seed the cross-fade (the previous clip recomputed on resume).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import NamedTuple

import numpy as np
import torch

_END = object()  # marks the end of the frame stream


class TimedFrame(NamedTuple):
    """A frame of the stream with its timestamp (in the output's time base)."""

    pts: int
    rgb: np.ndarray


@dataclass(frozen=True)
class Clip:
    """A run of T frames of the stream.

    frames: (T, H, W, C) array; the frames after the first `real` ones repeat frame `real - 1`;
    pts: the timestamps of the `real` frames when the stream's frames were `TimedFrame`s, else None.
    """

    index: int
    start: int
    real: int
    last: bool
    frames: np.ndarray
    pts: tuple[int, ...] | None = None


def clip_step(clip_frames: int, overlap: int) -> int:
    """Frames between the starts of two consecutive clips; validates the clip layout.

    Args:
        clip_frames (int): frames per clip, >= 1.
        overlap (int): frames shared by consecutive clips, in [0, clip_frames).

    Returns:
        int: clip_frames - overlap, >= 1.

    Raises:
        ValueError: for a bad layout.
    """
    if clip_frames < 1:
        raise ValueError(f"clip_frames must be >= 1, got {clip_frames}")
    if not 0 <= overlap < clip_frames:
        raise ValueError(f"overlap must be in [0, clip_frames - 1] = [0, {clip_frames - 1}], got {overlap}")
    return clip_frames - overlap


def count_clips(frames: int, clip_frames: int, overlap: int) -> int:
    """Number of clips `split_clips` makes of a stream of `frames` frames (0 for an empty stream).

    Args:
        frames (int): the stream's frame count.
        clip_frames (int): frames per clip, >= 1.
        overlap (int): frames shared by consecutive clips, in [0, clip_frames).

    Returns:
        int: the clip count, >= 0.

    Raises:
        ValueError: for a bad layout.
    """
    step = clip_step(clip_frames, overlap)
    if frames <= 0:
        return 0
    return 1 + max(0, -(-(frames - clip_frames) // step))


def split_clips(frames: Iterable[np.ndarray | TimedFrame], clip_frames: int, overlap: int,
                start_clip: int = 0) -> Iterator[Clip]:
    """Yield the clips of a stream of frames, beginning with clip `start_clip`.

    Reading stays one frame ahead of the clip being filled, to know whether it is the last one.

    Args:
        frames (Iterable[np.ndarray or TimedFrame]): (H, W, C) frames of one size and dtype, or `TimedFrame`s.
        clip_frames (int): frames per clip, >= 1.
        overlap (int): frames shared by consecutive clips, in [0, clip_frames).
        start_clip (int, *optional*, defaults to 0): the first clip, >= 0 (its first k·step frames are skipped).

    Yields:
        Clip: frames a (clip_frames, H, W, C) stack of the frames' dtype, padded by repetition after the
        `real` ones; pts the real frames' timestamps for `TimedFrame`s, else None.

    Raises:
        ValueError: for a bad layout or start_clip < 0.
    """
    step = clip_step(clip_frames, overlap)
    if start_clip < 0:
        raise ValueError(f"start_clip must be >= 0, got {start_clip}")
    stream = iter(frames)
    skip = start_clip * step
    if sum(1 for _ in islice(stream, skip)) < skip:
        return
    index, buffer = start_clip, []
    upcoming = next(stream, _END)
    while upcoming is not _END:
        buffer.append(upcoming)
        upcoming = next(stream, _END)
        if len(buffer) < clip_frames and upcoming is not _END:
            continue
        real = len(buffer)
        timed = isinstance(buffer[0], TimedFrame)
        images = [frame.rgb for frame in buffer] if timed else buffer
        padded = images + [images[-1]] * (clip_frames - real)
        pts = tuple(frame.pts for frame in buffer) if timed else None
        yield Clip(index, index * step, real, upcoming is _END, np.stack(padded), pts)
        index, buffer = index + 1, buffer[step:]


def fade_weights(overlap: int) -> torch.Tensor:
    """Weights of the newer clip on the shared frames.

    Args:
        overlap (int): frames shared by consecutive clips, >= 0.

    Returns:
        torch.Tensor: (overlap,) float32 in (0, 1): (j + 1) / (overlap + 1) for j = 0..overlap-1.
    """
    return torch.arange(1, overlap + 1, dtype=torch.float32) / (overlap + 1)


def join_clips(clips: Iterable[tuple[Clip, torch.Tensor]], overlap: int,
               warmup: bool = False) -> Iterator[tuple[int, torch.Tensor]]:
    """Cross-fade consecutive clips' outputs and drop the padding.

    Args:
        clips (Iterable[tuple[Clip, torch.Tensor]]): pairs (clip, output) with output (T, C, H', W') float, in
            stream order without gaps.
        overlap (int): frames shared by consecutive clips, in [0, T).
        warmup (bool, *optional*, defaults to False): the first pair only seeds the cross-fade and yields
            nothing.

    Yields:
        tuple[int, torch.Tensor]: (clip index, frames) with frames (n, C, H', W') of the output's dtype: the
        `step` frames starting at the clip's first frame (all its real frames for the last clip), final once
        yielded.

    Raises:
        ValueError: if a clip does not follow the one before.
    """
    held, expected = None, None
    ramp = fade_weights(overlap).view(-1, 1, 1, 1)
    for clip, output in clips:
        if expected is not None and clip.index != expected:
            raise ValueError(f"clip {clip.index} follows clip {expected - 1}; clips must be consecutive")
        expected = clip.index + 1
        frames = output[:clip.real]
        if held is not None and overlap > 0:
            head = torch.lerp(held, frames[:overlap], ramp.to(frames))
            frames = torch.cat([head, frames[overlap:]])
        step = len(frames) if clip.last else clip.real - overlap
        held = frames[step:]
        if warmup:
            warmup = False
            continue
        yield clip.index, frames[:step]

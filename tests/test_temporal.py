"""Temporal clips: frames in = frames out, identity in = identity out, linear cross-fade, resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from patchvsr.tiling.temporal import count_clips, fade_weights, join_clips, split_clips

T, O = 5, 2


def stream(n: int, h: int = 3, w: int = 4):
    """A generator (not a list) of n distinct (h, w, 3) uint8 frames: frame i is filled with i."""
    for i in range(n):
        yield np.full((h, w, 3), i, dtype=np.uint8)


def as_tensor(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float()


def identity_join(frames, clip_frames=T, overlap=O, start_clip=0, warmup=False):
    clips = split_clips(frames, clip_frames, overlap, start_clip)
    return list(join_clips(((c, as_tensor(c.frames)) for c in clips), overlap, warmup=warmup))


@pytest.mark.parametrize("n", [1, T - 1, T, T + 1, 5 * T + 3])
@pytest.mark.parametrize("overlap", [0, 1, O, T - 1])
def test_identity_in_identity_out(n, overlap):
    blocks = identity_join(stream(n), T, overlap)
    out = torch.cat([frames for _, frames in blocks])
    assert out.shape == (n, 3, 3, 4)
    expected = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, 3, 4)
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=0)  # a cross-fade of equal frames: ulps at most
    assert [index for index, _ in blocks] == list(range(count_clips(n, T, overlap)))


@pytest.mark.parametrize("n", [1, T - 1, T, T + 1, 5 * T + 3])
def test_clip_layout_and_padding(n):
    clips = list(split_clips(stream(n), T, O))
    step = T - O
    assert len(clips) == count_clips(n, T, O)
    for clip in clips:
        assert clip.frames.shape == (T, 3, 4, 3)
        assert clip.start == clip.index * step
        assert clip.real == min(T, n - clip.start)
        values = clip.frames[:, 0, 0, 0].tolist()
        assert values == [min(clip.start + j, n - 1) for j in range(T)]  # padding repeats the last frame
    assert [c.last for c in clips] == [False] * (len(clips) - 1) + [True]
    assert clips[-1].start + clips[-1].real == n


def test_cross_fade_is_a_linear_ramp():
    """Clip i outputs the constant i: shared frames ramp from the older clip's value to the newer one's."""
    n = 2 * T - O
    clips = split_clips(stream(n), T, O)
    outputs = ((c, torch.full((T, 1, 1, 1), float(c.index))) for c in clips)
    out = torch.cat([frames for _, frames in join_clips(outputs, O)]).flatten()
    ramp = fade_weights(O)
    assert torch.allclose(ramp, torch.tensor([1 / 3, 2 / 3]))
    expected = torch.cat([torch.zeros(T - O), ramp, torch.ones(T - O)])
    assert torch.allclose(out, expected)


def test_padding_output_is_dropped():
    """Whatever a method does on padded frames never reaches the output."""
    n = T + 1
    clips = split_clips(stream(n), T, O)
    outputs = []
    for clip in clips:
        output = as_tensor(clip.frames)
        output[clip.real:] = -100.0
        outputs.append((clip, output))
    out = torch.cat([frames for _, frames in join_clips(outputs, O)])
    assert len(out) == n and out.min() >= 0


@pytest.mark.parametrize("overlap", [0, O])
@pytest.mark.parametrize("start_clip", [1, 3])
def test_resume_from_clip_k_matches_uninterrupted(overlap, start_clip):
    """Starting at clip k (with the previous clip as warm-up when clips overlap) gives the same frames."""
    n, step = 5 * T + 3, T - overlap
    full = identity_join(stream(n), T, overlap)
    warm = overlap > 0
    resumed = identity_join(stream(n), T, overlap, start_clip - warm, warmup=warm)
    assert [index for index, _ in resumed] == [index for index, _ in full][start_clip:]
    assert resumed[0][1][0, 0, 0, 0] == start_clip * step
    for (_, a), (_, b) in zip(full[start_clip:], resumed):
        assert torch.equal(a, b)


def test_split_is_lazy():
    """Clips come out while the stream is read, one frame of lookahead at most."""
    seen = []

    def tracked():
        for i, frame in enumerate(stream(100)):
            seen.append(i)
            yield frame

    first = next(split_clips(tracked(), T, O))
    assert first.index == 0 and len(seen) == T + 1


def test_start_beyond_end_yields_nothing():
    assert list(split_clips(stream(4), T, O, start_clip=5)) == []


@pytest.mark.parametrize("clip_frames, overlap", [(0, 0), (4, 4), (4, -1)])
def test_bad_layout_is_refused(clip_frames, overlap):
    with pytest.raises(ValueError, match="clip_frames|overlap"):
        list(split_clips(stream(3), clip_frames, overlap))


def test_gap_between_clips_is_refused():
    clips = list(split_clips(stream(3 * T), T, 0))
    pairs = [(c, as_tensor(c.frames)) for c in (clips[0], clips[2])]
    with pytest.raises(ValueError, match="consecutive"):
        list(join_clips(pairs, 0))


@pytest.mark.parametrize("start_clip", [0, 2])
def test_timestamps_travel_with_the_frames_to_the_hr_blocks(start_clip):
    """Each output frame comes back with its own input timestamp, once, in order (irregular, as VFR input
    has), also when a resumed stream starts later and its first clip only seeds the cross-fade."""
    from patchvsr.api import upscale_clips
    from patchvsr.methods.classical import Bicubic
    from patchvsr.tiling.temporal import TimedFrame

    stamps = [3 * i + i * i for i in range(17)]
    frames = [TimedFrame(pts, frame) for pts, frame in zip(stamps, stream(17))]
    assert [clip.pts for clip in split_clips(frames, T, O)][0] == tuple(stamps[:T])
    blocks = list(upscale_clips(frames, Bicubic(clip_frames=T, clip_overlap=O), (6, 8), start_clip=start_clip))
    first = start_clip * (T - O)
    assert [pts for block in blocks for pts in block.pts] == stamps[first:]
    assert all(len(block.pts) == len(block.frames) for block in blocks)
    assert [block.frames[0, 0, 0, 0] for block in blocks][0] == first       # frame i is filled with i
    assert all(clip.pts is None for clip in split_clips(stream(7), T, O))   # plain frames carry none

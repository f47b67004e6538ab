"""Temporal detail filter (patchvsr.stabilize) and the two-way flow it uses (patchvsr.flow)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from patchvsr.flow import chain, pair_flows, warp
from patchvsr.stabilize import estimate_seconds, neighbour_warps, stabilize_detail


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth random texture, (h, w, 3) uint8: DIS needs structure at several scales to lock on."""
    noise = np.random.default_rng(seed).uniform(0, 255, (h // 4, w // 4, 3)).astype(np.float32)
    return np.clip(cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8)


def _panning_frames(count: int, step: int = 2, size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """(frames (T, size, size, 3) uint8, big texture): the view moves `step` px to the right per frame."""
    big = _texture(size + 16, size + 16 + step * count, seed=1)
    frames = np.stack([big[8:8 + size, 8 + step * t: 8 + size + step * t] for t in range(count)])
    return frames, big


def test_pair_flows_point_both_ways():
    frames, _ = _panning_frames(2, step=3)
    (on_second, valid_second), (on_first, valid_first) = pair_flows(frames[0], frames[1])
    # content moves 3 px left: a pixel of the second frame sits 3 px further right in the first, and back
    assert np.median(on_second[..., 0][valid_second]) == pytest.approx(3, abs=0.3)
    assert np.median(on_first[..., 0][valid_first]) == pytest.approx(-3, abs=0.3)
    assert valid_second.mean() > 0.8 and valid_first.mean() > 0.8
    aligned = warp(frames[0].astype(np.float32), on_second)
    inner = (slice(8, -8), slice(8, -8))
    assert np.abs(aligned - frames[1])[inner].mean() < 2.0


@pytest.mark.parametrize("radius, count", [(0, 4), (2, 1)])
def test_no_neighbours_leaves_the_detail_unchanged(radius, count):
    frames, _ = _panning_frames(count)
    detail = torch.randn(count, 3, 48, 48)
    assert stabilize_detail(detail, frames, radius) is detail


def test_detail_that_moves_with_the_content_is_kept():
    frames, big = _panning_frames(4)
    pattern = (big.astype(np.float32) - 128) / 128  # detail anchored to the content
    detail = torch.from_numpy(np.stack([pattern[8:56, 8 + 2 * t: 56 + 2 * t] for t in range(4)])).permute(0, 3, 1, 2)
    out = stabilize_detail(detail, frames, radius=2)
    assert out.shape == detail.shape and out.dtype == torch.float32
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))
    assert (out - detail)[inner].abs().mean() < 0.03 * detail[inner].abs().mean() + 0.01


def _anchored(big: np.ndarray, count: int, step: int = 2) -> torch.Tensor:
    """Detail that moves with the content of `_panning_frames`: (T, 3, 48, 48) in about [-1, 1]."""
    pattern = (big.astype(np.float32) - 128) / 64
    return torch.from_numpy(np.stack([pattern[8:56, 8 + step * t: 56 + step * t] for t in range(count)])).permute(0, 3, 1, 2)


def test_flicker_on_top_of_moving_detail_is_averaged_out():
    frames, big = _panning_frames(5)
    truth = _anchored(big, 5)
    noise = torch.from_numpy(np.random.default_rng(2).normal(0, 0.5, (5, 3, 48, 48)).astype(np.float32))
    out = stabilize_detail(truth + noise, frames, radius=2)
    inner = (2, slice(None), slice(8, -8), slice(8, -8))  # the middle frame averages 5 aligned fields
    before, after = noise[inner].std().item(), (out - truth)[inner].std().item()
    # independent noise falls to about 1/sqrt(5) = 0.45 of its spread; misaligned frames would blur the truth
    assert after < 0.6 * before
    still = stabilize_detail(truth + noise, np.repeat(frames[2:3], 5, axis=0), radius=2)  # wrong (zero) motion
    assert (still - truth)[inner].std().item() > 1.5 * after


def test_tiny_frames_are_left_unfiltered():
    frames = np.zeros((3, 8, 40, 3), np.uint8)
    detail = torch.randn(3, 3, 8, 40)
    assert stabilize_detail(detail, frames, 2) is detail


def test_large_frames_use_a_reduced_flow_that_still_follows_the_motion(monkeypatch):
    monkeypatch.setattr("patchvsr.stabilize.FLOW_SIDE", 24)  # flow at half size for these 48-px frames
    frames, big = _panning_frames(4)
    truth = _anchored(big, 4)
    out = stabilize_detail(truth, frames, radius=1)
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))
    assert (out - truth)[inner].abs().mean() < 0.1 * truth[inner].abs().mean()


def test_content_outside_a_neighbour_is_not_averaged_in():
    frames, big = _panning_frames(3, step=6)
    truth = _anchored(big, 3, step=6)
    out = stabilize_detail(truth, frames, radius=1)
    # frame 1's right edge entered the view after frame 0: only frame 2 (and itself) may contribute there
    edge = (1, slice(None), slice(8, -8), slice(-6, None))
    assert (out - truth)[edge].abs().mean() < 0.15 * truth[edge].abs().mean()


def test_negative_radius_is_refused():
    frames, _ = _panning_frames(2)
    with pytest.raises(ValueError, match="radius"):
        stabilize_detail(torch.zeros(2, 3, 48, 48), frames, -1)


def test_chained_translations_add_up_and_occlusion_carries_along():
    height, width = 20, 30
    right = np.zeros((height, width, 2), np.float32)
    right[..., 0] = 2.0  # points 2 px to the right
    down = np.zeros((height, width, 2), np.float32)
    down[..., 1] = 3.0
    blocked = np.ones((height, width), bool)
    blocked[10, 12] = False  # the pixel that (10, 10) reaches after the first link
    flow, valid = chain((right, np.ones((height, width), bool)), (down, blocked))
    np.testing.assert_allclose(flow[5:-5, 5:-5], np.broadcast_to([2.0, 3.0], flow[5:-5, 5:-5].shape))
    assert not valid[10, 10] and valid[10, 9] and valid[9, 10]


def test_far_neighbours_are_reached_through_chained_flows():
    frames, big = _panning_frames(7)
    truth = _anchored(big, 7)
    noise = torch.from_numpy(np.random.default_rng(3).normal(0, 0.5, (7, 3, 48, 48)).astype(np.float32))
    inner = (3, slice(None), slice(12, -12), slice(12, -12))  # the middle frame: 3 neighbours on each side
    spread = {radius: (stabilize_detail(truth + noise, frames, radius) - truth)[inner].std().item()
              for radius in (1, 3)}
    # 3 vs 7 aligned fields average the independent noise: 1/sqrt(3) = 0.58 vs 1/sqrt(7) = 0.38 of it
    assert spread[3] < 0.8 * spread[1] and spread[3] < 0.5 * noise[inner].std().item()


def test_neighbour_warps_count_the_neighbours_inside_the_clip():
    assert neighbour_warps(16, 8) == 2 * (sum(range(8)) + 8 * 8)  # the first and last 8 frames lack some
    assert neighbour_warps(4, 8) == 4 * 3  # every frame sees all others
    assert neighbour_warps(5, 1) == 2 * 4
    assert neighbour_warps(1, 8) == neighbour_warps(6, 0) == 0


def test_the_estimate_is_flow_pairs_and_warps_at_their_timed_cost(monkeypatch):
    ticks = iter(range(0, 100, 2))  # every timed step takes 2 s
    monkeypatch.setattr("patchvsr.stabilize.time.perf_counter", lambda: float(next(ticks)))
    assert estimate_seconds((24, 40), 16, 8) == pytest.approx(2.0 * (15 + neighbour_warps(16, 8)))
    assert estimate_seconds((24, 40), 16, 0) == estimate_seconds((12, 40), 16, 8) == 0.0  # off, too small

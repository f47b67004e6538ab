"""Seam score: hard steps at seams score >> 1, seamless blends ~1; the point of weighted fusion."""

import numpy as np
import pytest
import torch

from patchvsr.tiling import FusedVelocity, make_plan, seam_score

CANVAS, WINDOW = (96, 128), (16, 16)


def textured_canvas(seed=0):
    """(1, 1, H, W) mild noise texture, so lines between seams have a non-zero second difference."""
    return 0.05 * torch.randn(1, 1, *CANVAS, generator=torch.Generator().manual_seed(seed))


def fused_with_window_constants(fusion):
    """One fused velocity of a model that returns its input plus a different constant per window."""
    plan = make_plan(CANVAS, WINDOW, fusion)
    constants = torch.rand(len(plan.windows), generator=torch.Generator().manual_seed(1))

    def model(windows, t, batch):
        return windows + constants[list(batch.indices)].view(-1, 1, 1, 1, 1)

    return FusedVelocity(plan, model, batch_size=16)(textured_canvas(), 0.5, 0)[0, 0], plan


def test_pasting_leaves_steps_and_weighting_removes_them():
    scores = {}
    for fusion in ("none", "average", "weighted"):
        frame, plan = fused_with_window_constants(fusion)
        scores[fusion] = seam_score(frame, plan)
    assert scores["none"] > 3
    assert abs(scores["weighted"] - 1) < 0.1
    assert scores["weighted"] <= scores["average"]
    band, plan_band = fused_with_window_constants("band")  # a 2-px band blends the step, much less fully
    assert scores["weighted"] < seam_score(band, plan_band) < scores["none"] / 1.5
    assert seam_score(textured_canvas()[0, 0], plan) == pytest.approx(1, abs=0.1)


def test_step_on_a_seam_scores_high_and_off_a_seam_low():
    plan = make_plan((32, 32), (16, 16), "none")
    texture = textured_canvas()[0, 0, :32, :32]
    on_seam, off_seam = texture.clone(), texture.clone()
    on_seam[:, 16:] += 1
    off_seam[:, 8:] += 1
    assert seam_score(on_seam, plan) > 5
    assert seam_score(off_seam, plan) < 1


def test_degenerate_frames_score_one():
    assert seam_score(torch.rand(3, 10, 10), make_plan((10, 10), (16, 16), "none")) == 1.0  # no seam at all
    assert seam_score(torch.zeros(40, 40), make_plan((40, 40), (16, 16), "none")) == pytest.approx(1.0)


def test_pixel_frame_of_a_latent_plan_and_numpy_input():
    plan = make_plan((8, 8), (4, 4), "none")  # seams at 4 in latent pixels -> 8 in a x2 pixel frame
    frame = np.zeros((3, 16, 16), dtype=np.uint8)
    frame[:, :, 8:] = 200
    frame[:, ::2, ::2] += 10  # texture
    assert seam_score(frame, plan) > 5
    with pytest.raises(ValueError, match="multiple"):
        seam_score(np.zeros((3, 15, 16)), plan)


def test_eval_scores_seams_against_the_reference_on_the_same_lines():
    from patchvsr.eval.evaluate import FrameScores

    plan = make_plan((64, 96), (32, 32), "none")
    reference = (100 + np.random.default_rng(0).random((64, 96, 3)) * 20).astype(np.uint8)  # mild texture
    stepped = reference.astype(np.int16)
    stepped[:, 32:64] += 40  # a pasted window brighter than its neighbours: steps on both its seams
    stepped = stepped.clip(0, 255).astype(np.uint8)
    same, pasted = FrameScores(1, 100, plan), FrameScores(1, 100, plan)
    same.add(reference, reference)
    pasted.add(reference, stepped)
    assert same.summary()["seam_vs_reference"] == pytest.approx(1.0)
    assert pasted.summary()["seam_vs_reference"] > 1.05
    assert FrameScores(1, 100).summary()["seam_vs_reference"] is None

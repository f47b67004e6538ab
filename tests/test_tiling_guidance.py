"""Global guidance: the whole frame at window size, binary position masks, normalised crop boxes."""

import pytest
import torch

from patchvsr.tiling import crop_boxes, global_frame, make_plan, position_masks


def test_global_frame_resizes_every_frame_and_keeps_the_range():
    canvas = torch.rand(3, 2, 90, 160, generator=torch.Generator().manual_seed(0))
    guide = global_frame(canvas, (16, 32))
    assert guide.shape == (3, 2, 16, 32)
    assert guide.min() >= canvas.min() and guide.max() <= canvas.max()
    flat = global_frame(torch.full((1, 1, 37, 51), 0.3), (8, 8))
    torch.testing.assert_close(flat, torch.full((1, 1, 8, 8), 0.3))
    torch.testing.assert_close(guide.mean(dim=(-1, -2)), canvas.mean(dim=(-1, -2)), atol=2e-3, rtol=0)


def test_global_frame_keeps_frames_apart():
    canvas = torch.stack([torch.zeros(20, 20), torch.ones(20, 20)])[None]  # (1, T=2, 20, 20)
    guide = global_frame(canvas, (4, 4))
    torch.testing.assert_close(guide[0], torch.stack([torch.zeros(4, 4), torch.ones(4, 4)]))


def test_masks_mark_each_primary_window_footprint_exactly():
    plan = make_plan((64, 96), (32, 32), "weighted")  # 2 x 3 primary windows; G is 32 x 32
    primary = [w.index for w in plan.windows if w.kind == "primary"]
    masks = position_masks(plan, primary)
    assert masks.shape == (6, 1, 32, 32) and set(masks.unique().tolist()) == {0.0, 1.0}
    coverage = masks.sum(dim=0)  # primary footprints cover G; they share only G pixels cut by a seam
    assert coverage.min() == 1 and coverage.max() == 2 and coverage.eq(2).float().mean() < 0.1
    expected = torch.zeros(32, 32)
    expected[16:32, 10:22] = 1  # window (1, 1) covers canvas rows 32..64, columns 32..64 -> G columns 10.67..21.3
    torch.testing.assert_close(masks[4, 0], expected)


def test_masks_of_auxiliary_windows_straddle_the_seam():
    plan = make_plan((64, 64), (32, 32), "weighted")
    vseam = next(w.index for w in plan.windows if w.kind == "vseam")
    mask = position_masks(plan, [vseam], size=(8, 8))[0, 0]
    assert mask[:4, 2:6].eq(1).all() and mask.sum() == 16


@pytest.mark.parametrize("canvas", [(1, 1), (5, 3), (17, 33)])
def test_every_window_marks_at_least_one_guidance_pixel(canvas):
    for fusion in ("weighted", "shifted"):
        plan = make_plan(canvas, (8, 8), fusion)
        masks = position_masks(plan, range(len(plan.windows)))
        assert masks.flatten(1).sum(1).min() >= 1


def test_crop_boxes_are_normalised_and_clipped_to_the_canvas():
    plan = make_plan((17, 33), (8, 8), "weighted")  # padded to 24 x 40
    boxes = crop_boxes(plan, range(len(plan.windows)))
    assert boxes.shape == (45, 4) and boxes.dtype == torch.float32
    assert boxes.min() >= 0 and boxes.max() <= 1
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    torch.testing.assert_close(boxes[0], torch.tensor([0, 0, 8 / 33, 8 / 17]))
    torch.testing.assert_close(boxes[14], torch.tensor([32 / 33, 16 / 17, 1, 1]))  # last primary: clipped
    shifted = make_plan((17, 33), (8, 8), "shifted")
    first_shifted = shifted.group(1)[0]
    torch.testing.assert_close(crop_boxes(shifted, [first_shifted])[0], torch.tensor([0, 0, 4 / 33, 4 / 17]))


def test_one_pixel_canvas_has_a_full_mask_and_unit_box():
    plan = make_plan((1, 1), (16, 16), "weighted")
    assert position_masks(plan, [0]).eq(1).all()
    torch.testing.assert_close(crop_boxes(plan, [0])[0], torch.tensor([0.0, 0.0, 1.0, 1.0]))

"""Window plans: counts per formula, coverage, padding, crops, validation, printing."""

import math

import pytest
import torch
import torch.nn.functional as F

from patchvsr.tiling import FUSION_MODES, make_plan, mirror_index

SIZES = [(1, 1), (17, 33), (16, 16), (48, 32), (31, 45), (1080, 1920)]


def expected_count(canvas, window, fusion):
    """Windows in a plan, from the formulas in the plan module's docstring."""
    (H, W), (h, w) = canvas, window
    if fusion == "band":  # overlap o = h / 4: stride h - o
        o = h // 4
        return max(1, math.ceil((H - o) / (h - o))) * max(1, math.ceil((W - o) / (w - o)))
    rows, cols = math.ceil(H / h), math.ceil(W / w)
    if fusion in ("weighted", "average"):
        return (2 * rows - 1) * (2 * cols - 1)
    if fusion == "none":
        return rows * cols

    if rows == cols == 1:
        return 1

    def shifted(count, size, extent):  # half-shifted starts -size/2 + k*size that still reach the canvas
        return 1 if count == 1 else sum(k * size - size // 2 < extent for k in range(count + 1))

    return rows * cols + shifted(rows, h, H) * shifted(cols, w, W)


@pytest.mark.parametrize("fusion", FUSION_MODES)
@pytest.mark.parametrize("canvas", SIZES)
def test_window_count_matches_formula(canvas, fusion):
    window = (128, 128) if canvas == (1080, 1920) else (16, 16)
    plan = make_plan(canvas, window, fusion)
    assert len(plan.windows) == expected_count(canvas, window, fusion)


def test_counts_by_kind_for_a_3x2_grid():
    plan = make_plan((48, 32), (16, 16), "weighted")
    kinds = [w.kind for w in plan.windows]
    assert [kinds.count(k) for k in ("primary", "vseam", "hseam", "cross")] == [6, 3, 4, 2]
    assert plan.grid == (3, 2) and plan.padded == (48, 32)
    assert plan.seams() == ((16, 32), (16,))


def test_auxiliary_windows_are_centred_on_seams():
    plan = make_plan((32, 32), (16, 16), "weighted")
    by_kind = {w.kind: w for w in reversed(plan.windows)}  # the first window of each kind
    assert (by_kind["vseam"].y0, by_kind["vseam"].x0) == (0, 8)  # x-centre 16 = the vertical seam
    assert (by_kind["hseam"].y0, by_kind["hseam"].x0) == (8, 0)
    assert (by_kind["cross"].y0, by_kind["cross"].x0) == (8, 8)


@pytest.mark.parametrize("fusion", FUSION_MODES)
@pytest.mark.parametrize("canvas", [(1, 1), (17, 33), (31, 45), (33, 17)])
def test_every_step_group_covers_the_canvas(canvas, fusion):
    plan = make_plan(canvas, (8, 8), fusion)
    for step in range(plan.num_groups):
        covered = torch.zeros(canvas, dtype=torch.bool)
        for y0, x0, y1, x1 in plan.boxes(plan.group(step)).tolist():
            assert y0 < canvas[0] and x0 < canvas[1] and y1 > 0 and x1 > 0  # no window wholly in padding
            covered[max(y0, 0) : y1, max(x0, 0) : x1] = True
        assert covered.all()


def test_shifted_alternates_groups_and_costs_one_grid_per_step():
    plan = make_plan((64, 64), (16, 16), "shifted")
    assert plan.num_groups == 2
    assert len(plan.group(0)) == 16 and len(plan.group(1)) == 25 and plan.group(2) == plan.group(0)
    assert {plan.windows[i].kind for i in plan.group(1)} == {"shifted"}
    assert plan.boxes(plan.group(1)[:1]).tolist() == [[-8, -8, 8, 8]]
    assert make_plan((16, 64), (16, 16), "shifted").boxes([4])[0, 0] == 0  # one row: no vertical shift


def test_mirror_index_reflects_any_coordinate():
    coords = torch.arange(-4, 9)
    assert mirror_index(coords, 1).tolist() == [0] * 13
    assert mirror_index(coords, 2).tolist() == [0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0]
    assert mirror_index(coords, 4).tolist() == [2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1, 2]


def test_crop_equals_reflect_padding_and_box_slices():
    canvas = torch.randn(2, 3, 17, 33)
    plan = make_plan((17, 33), (8, 8), "weighted")
    Hp, Wp = plan.padded
    padded = F.pad(canvas, (0, Wp - 33, 0, Hp - 17), mode="reflect")
    indices = list(range(len(plan.windows)))
    crops = plan.crop(canvas, indices)
    assert crops.shape == (len(indices), 2, 3, 8, 8)
    for crop, (y0, x0, y1, x1) in zip(crops, plan.boxes(indices).tolist()):
        torch.testing.assert_close(crop, padded[:, :, y0:y1, x0:x1], rtol=0, atol=0)


def test_crop_of_a_one_pixel_canvas_repeats_it():
    canvas = torch.tensor([0.25, -1.0]).reshape(2, 1, 1, 1)
    crops = make_plan((1, 1), (4, 6), "weighted").crop(canvas, [0])
    assert crops.shape == (1, 2, 1, 4, 6)
    assert (crops[0, 0] == 0.25).all() and (crops[0, 1] == -1.0).all()


def test_crop_of_a_scaled_condition_canvas_uses_scaled_boxes():
    plan = make_plan((4, 6), (2, 2), "weighted")
    condition = torch.arange(8 * 12, dtype=torch.float32).reshape(1, 1, 8, 12)
    crops = plan.crop(condition, [1, 6])  # primary (0, 2) and the first vseam (0, 1)
    assert crops.shape == (2, 1, 1, 4, 4)
    torch.testing.assert_close(crops[0, 0, 0], condition[0, 0, 0:4, 4:8])
    torch.testing.assert_close(crops[1, 0, 0], condition[0, 0, 0:4, 2:6])
    with pytest.raises(ValueError, match="multiple"):
        plan.crop(torch.zeros(1, 1, 8, 13), [0])


@pytest.mark.parametrize(
    "canvas, window, fusion",
    [
        ((0, 5), (8, 8), "weighted"),
        ((5, 5), (8, 0), "none"),
        ((5, 5), (8, 8), "blend"),
        ((5.0, 5), (8, 8), "none"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_value(canvas, window, fusion):
    with pytest.raises(ValueError, match="canvas|window|fusion"):
        make_plan(canvas, window, fusion)


def test_plan_prints_a_readable_summary_and_table():
    plan = make_plan((17, 33), (8, 8), "weighted")
    text = str(plan)
    assert "17x33" in text and "padded 24x40" in text and "45 windows" in text and "8 cross" in text
    assert len(plan.table().splitlines()) == 45
    assert "alternating in 2 groups" in str(make_plan((17, 33), (8, 8), "shifted"))
    assert make_plan((17, 33), (8, 8), "shifted").windows_per_step == 15


@pytest.mark.parametrize("canvas, origin, size", [((20, 30), (-4, -4), (32, 40)), ((3, 2), (-8, -8), (24, 24))])
def test_pad_matches_the_crop_rule_on_both_paths(canvas, origin, size):
    plan = make_plan(canvas, (16, 16), "shifted")  # first case: F.pad fast path; second: index path
    image = torch.randn(2, 1, *canvas)
    padded = plan.pad(image, origin, size)
    rows = mirror_index(torch.arange(origin[0], origin[0] + size[0]), canvas[0])
    cols = mirror_index(torch.arange(origin[1], origin[1] + size[1]), canvas[1])
    assert torch.equal(padded, image[:, :, rows[:, None], cols[None, :]])

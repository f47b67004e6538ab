"""Fusion: exactness with an identity model, positive weights, batch-size invariance, model contract."""

import pytest
import torch

from patchvsr.tiling import FUSION_MODES, FusedVelocity, hann_bump, make_plan, plan_weights


def identity(windows, t, batch):
    return windows


def per_window_model(windows, t, batch):
    """Nonlinear, elementwise, plus a constant per window: exercises weights and accumulation order."""
    offsets = torch.tensor(batch.indices, dtype=windows.dtype).mul(0.37).sin()
    return torch.tanh(windows) * (1 + t) + offsets[:, None, None, None, None]


CASES = [  # (canvas, window): 1x1, 17x33, h x w, 3h x 2w, odd sizes, odd windows
    ((1, 1), (16, 16)),
    ((17, 33), (16, 16)),
    ((16, 16), (16, 16)),
    ((48, 32), (16, 16)),
    ((31, 45), (16, 16)),
    ((23, 19), (9, 7)),
    ((5, 3), (9, 7)),
]


@pytest.mark.parametrize("fusion", FUSION_MODES)
@pytest.mark.parametrize("canvas, window", CASES)
def test_identity_model_reproduces_the_latent(canvas, window, fusion):
    z = torch.randn(3, 2, *canvas, generator=torch.Generator().manual_seed(0))
    velocity_fn = FusedVelocity(make_plan(canvas, window, fusion), identity, batch_size=4)
    for step in range(2):
        torch.testing.assert_close(velocity_fn(z, 0.5, step), z, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("fusion", FUSION_MODES)
def test_identity_model_on_1080p_with_128_windows(fusion):
    z = torch.rand(1, 1, 1080, 1920, generator=torch.Generator().manual_seed(1))
    velocity_fn = FusedVelocity(make_plan((1080, 1920), (128, 128), fusion), identity, batch_size=64)
    for step in range(velocity_fn.plan.num_groups):
        torch.testing.assert_close(velocity_fn(z, 0.5, step), z, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("fusion", FUSION_MODES)
@pytest.mark.parametrize("canvas, window", CASES + [((1080, 1920), (128, 128))])
def test_total_weight_is_positive_on_the_whole_canvas(canvas, window, fusion):
    plan = make_plan(canvas, window, fusion)
    for group in plan_weights(plan).groups:
        (oy, ox), (H, W) = group.origin, canvas
        assert (group.total[-oy : H - oy, -ox : W - ox] > 0).all()


@pytest.mark.parametrize("canvas", [(48, 32), (17, 33), (64, 80)])
def test_weighted_maps_are_a_partition_of_unity(canvas):
    total = plan_weights(make_plan(canvas, (16, 16), "weighted")).groups[0].total
    torch.testing.assert_close(total, torch.ones_like(total))


@pytest.mark.parametrize("canvas", [(48, 32), (17, 33), (64, 80), (720, 1280)])
def test_band_maps_are_a_partition_of_unity_with_ramps_only_in_the_bands(canvas):
    window = (64, 64) if canvas == (720, 1280) else (16, 16)
    plan = make_plan(canvas, window, "band")
    weights = plan_weights(plan)
    torch.testing.assert_close(weights.groups[0].total, torch.ones_like(weights.groups[0].total))
    o = plan.overlap
    assert o == window[0] // 4
    for profile, window_ in zip(weights.wx, plan.windows):  # 1 outside the shared bands, strictly inside (0, 1) in them
        inner = profile[o if window_.x0 > 0 else 0: window[1] - o if window_.x0 + window[1] < plan.padded[1] else None]
        assert inner.eq(1).all()
        if window_.x0 > 0:
            assert (profile[:o].diff() > 0).all() and 0 < profile[0] < 0.5 < profile[o - 1] < 1


def test_band_plan_steps_by_the_window_less_its_overlap():
    plan = make_plan((720, 1280), (64, 64), "band")
    assert plan.overlap == 16 and plan.stride == (48, 48) and plan.grid == (15, 27)
    assert plan.padded == (14 * 48 + 64, 26 * 48 + 64) == (736, 1312)
    assert len(plan.windows) == 405  # against 240 for `none`, 897 for `weighted`
    assert plan.seams()[0][:2] == (56, 104)  # the middle of the bands [48, 64) and [96, 112)
    assert make_plan((64, 64), (64, 64), "band").seams() == ((), ())
    assert make_plan((720, 1280), (64, 64), "band", overlap=8).stride == (56, 56)
    with pytest.raises(ValueError, match="overlap"):
        make_plan((720, 1280), (64, 64), "band", overlap=64)


def test_weighted_seam_window_peaks_on_its_seam_and_decays():
    plan = make_plan((32, 32), (16, 16), "weighted")
    weights = plan_weights(plan)
    vseam = next(w.index for w in plan.windows if w.kind == "vseam")
    profile = weights.wx[vseam]
    assert profile.argmax() in (7, 8)  # window x 8..24: columns 15 and 16 sit on the seam at x = 16
    assert (profile[:8].diff() > 0).all() and (profile[8:].diff() < 0).all()
    torch.testing.assert_close(hann_bump(16), hann_bump(16).flip(0))
    corner = weights.maps([0])[0]  # top-left primary: held at 1 towards the canvas border
    assert corner[0, 0] == 1 and corner[:8, :8].eq(1).all() and corner[15, 15] < 0.01


@pytest.mark.parametrize("fusion", FUSION_MODES)
def test_batch_size_1_and_7_are_bit_identical(fusion):
    z = torch.randn(2, 3, 45, 70, generator=torch.Generator().manual_seed(2))
    plan = make_plan((45, 70), (16, 16), fusion)
    one, seven = FusedVelocity(plan, per_window_model, 1), FusedVelocity(plan, per_window_model, 7)
    for step in range(2):
        assert torch.equal(one(z, 0.3, step), seven(z, 0.3, step))


def test_denoise_sees_batches_of_windows_with_their_conditions():
    plan = make_plan((40, 40), (16, 16), "weighted")
    seen = []

    def spy(windows, t, batch):
        seen.append((windows.shape, t, batch))
        return windows

    FusedVelocity(plan, spy, batch_size=4, scale=2.5, mask_size=(8, 8))(torch.zeros(1, 1, 40, 40), 0.75, 0)
    assert [len(b.indices) for _, _, b in seen] == [4, 4, 4, 4, 4, 4, 1]
    assert sum((b.indices for _, _, b in seen), ()) == tuple(range(25))  # every window once, in plan order
    shape, t, batch = seen[0]
    assert shape == (4, 1, 1, 16, 16) and t == 0.75 and batch.scale == 2.5
    assert batch.masks.shape == (4, 1, 8, 8) and batch.crop_boxes.shape == (4, 4)
    assert batch.boxes[1].tolist() == [0, 16, 16, 32]


def test_low_precision_latent_keeps_its_dtype():
    z = torch.randn(2, 1, 20, 20).bfloat16()
    v = FusedVelocity(make_plan((20, 20), (8, 8), "weighted"), identity)(z, 0.5, 0)
    assert v.dtype == torch.bfloat16
    torch.testing.assert_close(v, z)


def test_contract_violations_raise_value_error():
    plan = make_plan((20, 20), (8, 8), "weighted")
    with pytest.raises(ValueError, match="latent"):
        FusedVelocity(plan, identity)(torch.zeros(1, 1, 20, 21), 0.5)
    with pytest.raises(ValueError, match="denoise returned"):
        FusedVelocity(plan, lambda w, t, b: w[:, :, :, :4])(torch.zeros(1, 1, 20, 20), 0.5)
    with pytest.raises(ValueError, match="batch_size"):
        FusedVelocity(plan, identity, batch_size=0)

"""Shapes at every boundary of the models, presets, validation errors (tiny CPU models, no downloads)."""

import pytest
import torch

from patchvsr.models import (
    DIT_PRESETS, PRESETS, PatchVSRConfig, PatchVSRModel, VideoDiT, WindowConditions,
    full_frame_conditions,
)
from patchvsr.models.layers import patchify, sincos_3d, unpatchify
from model_helpers import perturb_, random_conditions, random_noisy

N, T, H, W = 3, 2, 16, 16      # "test" preset: 2 heads, 2 layers, 16x16 windows, 4x4 token patches


@pytest.fixture(scope="module")
def model():
    return perturb_(PatchVSRModel.from_preset("test"), seed=1).eval()


def test_base_forward_shape_and_dtype():
    base = perturb_(VideoDiT.from_preset("test"), seed=0)
    z, t = random_noisy(3, N, T, (H, W), seed=0)
    v = base(z, t)
    assert v.shape == z.shape and v.dtype == torch.float32
    assert base.grid(z.shape) == (T, H // 4, W // 4)


def test_branch_and_injection_shapes(model):
    cond = random_conditions(3, N, T, (H, W), seed=0)
    spec, tokens = model.base.config, T * (H // 4) * (W // 4)
    features = model.adapter.branch_features(cond.lr_up, cond.global_input)
    assert [s.shape for s in features.patch_states] == [(N, tokens, spec.hidden_size)] * 1
    # global branch: a quarter of the window's tokens
    assert features.global_tokens.shape == (N, tokens // 4, spec.hidden_size)
    emb = model.embedder(cond.scale, cond.crop_box, cond.noise_level)
    assert emb.shape == (N, spec.hidden_size)
    injection = model.adapter.injection(features, cond.lr_up, emb)
    assert injection.stem.shape == (N, spec.stem_channels, T, H, W)
    assert [r.shape for r in injection.residuals] == [(N, tokens, spec.hidden_size)] * spec.depth
    head_dim = spec.hidden_size // spec.num_heads
    for k, v in injection.global_kv:
        assert k.shape == v.shape == (N, spec.num_heads, tokens // 4, head_dim)


def test_velocity_shape_scalar_and_vector_t(model):
    cond = random_conditions(3, N, T, (H, W), seed=2)
    z, t = random_noisy(3, N, T, (H, W), seed=2)
    with torch.no_grad():
        v = model.velocity(z, t, cond)
        v_scalar = model.velocity(z, 0.5, cond)
        v_vector = model.velocity(z, torch.full((N,), 0.5), cond)
    assert v.shape == z.shape and v.dtype == z.dtype and v.is_contiguous()
    torch.testing.assert_close(v_scalar, v_vector)


def test_patchify_round_trip_and_position_table():
    x = torch.randn(2, 5, 4, 8, 12)
    tokens = patchify(x, patch=4, patch_t=2)
    assert tokens.shape == (2, 2 * 2 * 3, 2 * 4 * 4 * 5)
    assert torch.equal(unpatchify(tokens, (2, 2, 3), patch=4, patch_t=2), x)
    table = sincos_3d(32, (2, 2, 3), torch.device("cpu"), torch.float32)
    assert table.shape == (12, 32) and len({tuple(row.tolist()) for row in table}) == 12   # distinct positions


def test_full_frame_mode_any_size(model):
    """One window = a whole non-square frame of another size than the native window (quadratic baseline)."""
    lr_up = torch.rand(1, 3, 4, 24, 40) * 2 - 1
    cond = full_frame_conditions(lr_up, scale=4.0, noise_level=0.25)
    z, t = random_noisy(3, 1, 4, (24, 40), seed=3)
    with torch.no_grad():
        v = model.velocity(z, t, cond)
        v_base = model.base(z, t)
    assert v.shape == v_base.shape == z.shape
    assert torch.isfinite(v).all()
    assert cond.crop_box.tolist() == [[0.0, 0.0, 1.0, 1.0]] and bool((cond.global_input[:, 3] == 1).all())


@pytest.mark.parametrize("channels, patch_t, frames, bad_shape", [
    (4, 1, 2, (2, H, W + 2)),          # width not a multiple of the 4-px token patch
    (3, 2, 4, (3, H, W)),              # 3 frames: not a multiple of the 2-frame token patch
])
def test_latent_channels_and_temporal_token_patches(channels, patch_t, frames, bad_shape):
    """A latent-space base (4 channels, as behind a VAE) and 2-frame token patches work the same way."""
    base = VideoDiT.from_preset("test", in_channels=channels, patch_size_t=patch_t, num_frames=frames)
    model = perturb_(PatchVSRModel.from_base(base, PatchVSRModel.from_preset("test").config), seed=1).eval()
    cond = random_conditions(channels, N, frames, (H, W), seed=4)
    z, t = random_noisy(channels, N, frames, (H, W), seed=4)
    with torch.no_grad():
        v = model.velocity(z, t, cond)
        tokens = model.adapter.branch_features(cond.lr_up, cond.global_input).patch_states[0].shape[1]
    assert v.shape == z.shape and tokens == (frames // patch_t) * (H // 4) * (W // 4)
    with pytest.raises(ValueError, match="token patch"):
        base(torch.zeros(1, channels, *bad_shape), torch.zeros(1))


def test_build_conditions_from_tiling_pieces():
    lr_up = torch.zeros(N, 3, T, H, W)
    cond = WindowConditions.build(lr_up, torch.ones(3, T, 8, 8), torch.zeros(N, 1, 8, 8), 4.0,
                                  torch.rand(N, 4), 0.25, keys=[0, 1, 2])
    assert cond.global_input.shape == (N, 4, T, 8, 8)
    assert cond.scale.tolist() == [4.0] * N and cond.keys == (0, 1, 2)
    assert cond.select([2, 0]).keys == (2, 0)


def test_sizes_not_multiple_of_token_patch_raise(model):
    base = model.base
    with pytest.raises(ValueError, match="not a multiple of the token patch"):
        base(torch.zeros(1, 3, T, 18, 16), torch.zeros(1))


@pytest.mark.parametrize("bad, match", [
    (dict(global_input=torch.zeros(N, 3, T, 8, 8)), "global_input"),
    (dict(scale=torch.zeros(N + 1)), "scale"),
    (dict(crop_box=torch.zeros(N, 3)), "crop_box"),
    (dict(keys=(0, 1)), "keys"),
])
def test_window_conditions_validate_shapes(bad, match):
    fields = dict(lr_up=torch.zeros(N, 3, T, H, W), global_input=torch.zeros(N, 4, T, 8, 8),
                  scale=torch.ones(N), crop_box=torch.zeros(N, 4), noise_level=torch.zeros(N))
    with pytest.raises(ValueError, match=match):
        WindowConditions(**{**fields, **bad})


def test_velocity_rejects_mismatched_conditions(model):
    cond = random_conditions(3, N, T, (H, W), seed=0)
    with pytest.raises(ValueError, match="lr_up"):
        model.velocity(torch.zeros(N, 3, T, 8, 8), 0.5, cond)


@pytest.mark.parametrize("bad, match", [
    (dict(depth=0), "depth"), (dict(hidden_size=40), "hidden_size"), (dict(mlp_ratio=0.0), "mlp_ratio"),
    (dict(sample_size=18), "sample window"),
])
def test_dit_config_validation(bad, match):
    with pytest.raises(ValueError, match=match):
        VideoDiT(**{**DIT_PRESETS["test"], **bad})


@pytest.mark.parametrize("bad", [dict(patch_depth=0), dict(lora_rank=1.5), dict(use_lora="yes"),
                                 dict(lora_alpha=-1.0), dict(cond_freq_dim=15)])
def test_patchvsr_config_validation(bad):
    name = next(iter(bad))
    with pytest.raises(ValueError, match=name):
        PatchVSRConfig(**bad)


def test_unknown_preset_names_the_choices():
    with pytest.raises(ValueError, match="tiny"):
        PatchVSRModel.from_preset("huge")


def test_preset_sizes():
    """The shipped CPU preset stays in its 3-8 M parameter budget; small is bigger; the test preset is tiny."""
    totals = {}
    for name in PRESETS:
        with torch.device("meta"):                      # shapes only: no memory, no initialisation cost
            counts = PatchVSRModel.from_preset(name).parameter_counts()
        assert set(counts) == {"base", "adapter", "embedder", "lora"}
        totals[name] = sum(counts.values())
    assert totals["test"] < 200_000 < 3_000_000 < totals["tiny"] < 8_000_000 < totals["small"]


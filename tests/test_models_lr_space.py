"""The LR-space model variant (stem and head on the pixel-unshuffled grid) and the degradation condition:
shapes, identity at initialisation, the estimator, saving and loading, and what the sampler passes."""

import pytest
import torch
from einops import rearrange

from patchvsr.errors import OptionError
from patchvsr.methods.patchvsr import PatchVSRUpscaler, SamplerOptions, bicubic_canvas
from patchvsr.models import PatchVSRConfig, PatchVSRModel, VideoDiT, WindowConditions
from patchvsr.models.conditions import ConditionEmbedder, DegradationEstimator
from patchvsr.models.layers import DepthToSpace, SpaceToDepth, last_conv, output_head
from model_helpers import perturb_, random_conditions, random_noisy

N, T, H, W = 2, 2, 16, 16      # "test" preset windows: 4x4 token patches, here on a 2x unshuffled grid


def lr_space_model(seed: int = 0, use_degradation: bool = True) -> PatchVSRModel:
    base = VideoDiT.from_preset("test", seed=seed, stem_stride=2, head_blocks=1)
    config = PatchVSRConfig(patch_depth=1, global_depth=1, lora_rank=2, lora_alpha=2.0, cond_freq_dim=16,
                            use_degradation=use_degradation)
    return PatchVSRModel.from_base(base, config, seed=seed + 1)


def test_space_to_depth_round_trip():
    x = torch.randn(2, 3, 4, 8, 12)
    packed = SpaceToDepth(4)(x)
    assert packed.shape == (2, 48, 4, 2, 3)
    assert torch.equal(DepthToSpace(4)(packed), x)
    # the 4x4 pixels of one cell become that cell's 16 channels of each colour
    assert torch.equal(packed[0, :16, 0, 0, 0], x[0, 0, 0, :4, :4].reshape(-1))


def test_output_head_upsamples_and_its_last_conv_is_found():
    head = output_head(8, 3, stride=4, blocks=2)
    assert head(torch.randn(1, 8, 2, 5, 6)).shape == (1, 3, 2, 20, 24)
    assert last_conv(head) is head[-2]
    flat = output_head(8, 3, stride=1, blocks=0)
    assert len(flat) == 3 and last_conv(flat) is flat[-1]


def test_full_resolution_head_keeps_the_old_layout():
    """stem_stride 1 and no head blocks: the parameter names of the first tiny model (its folder loads)."""
    names = set(VideoDiT.from_preset("test").state_dict())
    assert {"stem.weight", "head.0.weight", "head.2.weight"} <= names
    assert not any(name.startswith("stem.1") for name in names)


def test_lr_space_shapes_and_identity_at_init():
    model = lr_space_model().eval()
    spec = model.base.config
    assert (spec.stem_stride, model.base.grid_patch) == (2, 2)
    cond = random_conditions(3, N, T, (H, W), seed=0)
    z, t = random_noisy(3, N, T, (H, W), seed=0)
    with torch.no_grad():
        features = model.adapter.branch_features(cond.lr_up, cond.global_input)
        emb = model.embedder(cond.scale, cond.crop_box, cond.noise_level, torch.zeros(N))
        injection = model.adapter.injection(features, cond.lr_up, emb)
        v = model.velocity(z, t, cond)
    assert injection.stem.shape == (N, spec.stem_channels, T, H // 2, W // 2)
    assert features.patch_states[0].shape == (N, T * (H // 4) * (W // 4), spec.hidden_size)
    assert v.shape == z.shape
    assert torch.count_nonzero(v) == 0       # zero-initialised output conv: the base starts at v = 0


def test_lr_space_model_gives_detail_after_perturbation_and_any_window_size():
    model = perturb_(lr_space_model(), seed=3).eval()
    for size in ((16, 16), (24, 32)):
        cond = random_conditions(3, N, T, size, seed=1)
        z, t = random_noisy(3, N, T, size, seed=1)
        with torch.no_grad():
            v = model.velocity(z, t, cond)
        assert v.shape == z.shape and torch.isfinite(v).all() and v.abs().mean() > 0


def test_stem_stride_must_divide_the_token_patch():
    with pytest.raises(ValueError, match="multiple of stem_stride"):
        VideoDiT.from_preset("test", stem_stride=3)
    with pytest.raises(ValueError, match="head_blocks"):
        VideoDiT.from_preset("test", head_blocks=-1)


def test_estimator_range_and_shape():
    estimator = perturb_(DegradationEstimator(3), seed=0, std=0.1)
    windows = torch.rand(4, 3, 2, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    out = estimator(windows, torch.tensor([2.0, 3.0, 4.0, 4.0]))
    assert out.shape == (4,) and out.dtype == torch.float32
    assert ((out > 0) & (out < 1)).all()


def test_estimator_maps_of_frame_slices_join_into_the_whole_clip_s_estimate():
    estimator = perturb_(DegradationEstimator(3), seed=0, std=0.1)
    clip = torch.rand(1, 3, 8, 32, 48, generator=torch.Generator().manual_seed(1)) * 2 - 1
    scale = torch.tensor([4.0])
    halves = [estimator.energy_maps(clip[:, :, :4]), estimator.energy_maps(clip[:, :, 4:])]
    joined = [torch.cat(level, dim=2) for level in zip(*halves)]
    assert torch.equal(estimator(None, scale, joined), estimator(clip, scale))  # per-frame maps: exact
    assert torch.equal(estimator(None, scale, halves[0]), estimator(clip[:, :, :4], scale))


def test_estimator_statistics_see_noise_in_quiet_windows():
    generator = torch.Generator().manual_seed(0)
    smooth = torch.full((2, 3, 2, 32, 32), 0.2)
    noisy = smooth + 0.03 * torch.randn(smooth.shape, generator=generator)
    estimator = DegradationEstimator(3)
    quiet, loud = estimator.statistics(smooth), estimator.statistics(noisy)
    assert quiet.shape == (2, 27)
    assert (loud > quiet + 1.0).all()  # each quantile, channel and level: e^3.5 times the energy or more
    with pytest.raises(ValueError, match="RGB"):
        DegradationEstimator(4)


def test_embedder_with_degradation_needs_a_strength_and_depends_on_it():
    embedder = perturb_(ConditionEmbedder(32, 16, use_degradation=True), seed=0)
    args = (torch.full((2,), 4.0), torch.tensor([[0.0, 0.0, 0.5, 0.5]] * 2), torch.zeros(2))
    with pytest.raises(ValueError, match="degradation"):
        embedder(*args)
    clean, heavy = embedder(*args, torch.zeros(2)), embedder(*args, torch.ones(2))
    assert clean.shape == (2, 32) and not torch.allclose(clean, heavy)
    plain = ConditionEmbedder(32, 16)
    assert plain.estimator is None and plain.mlp[0].in_features == 6 * 16


def test_model_estimates_the_strength_unless_given():
    model = perturb_(lr_space_model(), seed=5).eval()
    cond = random_conditions(3, N, T, (H, W), seed=4)
    z, t = random_noisy(3, N, T, (H, W), seed=4)
    with torch.no_grad():
        estimate = model.embedder.estimator(cond.lr_up, cond.scale)
        auto = model.velocity(z, t, cond)
        given = model.velocity(z, t, WindowConditions(**{**cond.__dict__, "degradation": estimate}))
        other = model.velocity(z, t, WindowConditions(**{**cond.__dict__, "degradation": 1 - estimate}))
    torch.testing.assert_close(auto, given)
    assert not torch.allclose(auto, other)
    assert torch.equal(model.degradation(cond), estimate)


def test_sampler_conditions_every_window_on_one_estimate_of_the_whole_canvas():
    model = perturb_(lr_space_model(), seed=8).eval()
    passed = []
    velocity = model.velocity
    model.velocity = lambda z, t, cond: passed.append(cond.degradation) or velocity(z, t, cond)
    clip = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(8))
    clip[:, :, :, 6:] = 0.5                             # one busy and one flat half: windows that read apart

    def upscale(degradation):
        options = SamplerOptions(fusion="none", dtype="fp32", temporal_radius=0, degradation=degradation)
        return PatchVSRUpscaler(model, 0.5, options, torch.device("cpu")).upscale_clip(clip, (48, 48), 0)

    auto = upscale("auto")
    canvas, scale = bicubic_canvas(clip, (48, 48))
    with torch.no_grad():
        estimate = model.embedder.estimator(canvas[None], torch.tensor([scale]))
        per_window = model.embedder.estimator(rearrange(canvas, "c t (i h) (j w) -> (i j) c t h w", h=H, w=W),
                                              torch.full((9,), scale))
    assert torch.equal(torch.cat(passed), torch.full((9,), float(estimate)))   # nine windows, one strength
    assert per_window.max() - per_window.min() > 1e-3   # so the windows would have been told different things
    torch.testing.assert_close(auto, upscale(float(estimate)), rtol=0, atol=1e-6)


def test_models_without_the_condition_ignore_a_given_strength():
    model = perturb_(lr_space_model(use_degradation=False), seed=6).eval()
    cond = random_conditions(3, N, T, (H, W), seed=6)
    z, t = random_noisy(3, N, T, (H, W), seed=6)
    with torch.no_grad():
        plain = model.velocity(z, t, cond)
        given = model.velocity(z, t, WindowConditions(**{**cond.__dict__, "degradation": torch.ones(N)}))
    assert torch.equal(plain, given)
    assert model.degradation(cond) is None


def test_window_conditions_degradation_shape_select_and_build():
    cond = random_conditions(3, 3, T, (H, W), seed=0)
    with pytest.raises(ValueError, match="degradation"):
        WindowConditions(**{**cond.__dict__, "degradation": torch.zeros(2)})
    with_strength = WindowConditions(**{**cond.__dict__, "degradation": torch.tensor([0.1, 0.2, 0.3])})
    assert torch.equal(with_strength.select([2, 0]).degradation, torch.tensor([0.3, 0.1]))
    built = WindowConditions.build(cond.lr_up, None, None, 4.0, cond.crop_box, 0.0, degradation=0.25)
    assert torch.equal(built.degradation, torch.full((3,), 0.25))
    assert WindowConditions.build(cond.lr_up, None, None, 4.0, cond.crop_box, 0.0).degradation is None


def test_lr_space_model_round_trips_through_its_folder(tmp_path):
    model = perturb_(lr_space_model(), seed=7).eval()
    model.save_pretrained(tmp_path / "m")
    loaded = PatchVSRModel.from_pretrained(tmp_path / "m")
    public = lambda config: {k: v for k, v in config.items() if not k.startswith("_")}  # noqa: E731
    assert loaded.config.use_degradation and public(loaded.base.config) == public(model.base.config)
    first, second = model.state_dict(), loaded.state_dict()
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.parametrize("value, strength", [("auto", None), ("0", 0.0), ("0.7", 0.7), (1, 1.0)])
def test_sampler_degradation_option(value, strength):
    assert SamplerOptions(degradation=value).degradation_strength == strength


@pytest.mark.parametrize("value", ["1.5", "-0.1", "strong", "nan"])
def test_sampler_degradation_option_rejects(value):
    with pytest.raises(OptionError, match="--degradation"):
        SamplerOptions(degradation=value)


def test_train_head_makes_only_the_base_head_trainable_and_saves_it(tmp_path):
    def head_trainable(model):
        return {name.split(".", 1)[0] for name, p in model.base.named_parameters() if p.requires_grad
                and "lora_" not in name}

    base = VideoDiT.from_preset("test", stem_stride=2, head_blocks=1)
    frozen = PatchVSRModel.from_base(base, PatchVSRConfig(lora_rank=2, lora_alpha=2.0, cond_freq_dim=16))
    assert head_trainable(frozen) == set()
    base = VideoDiT.from_preset("test", stem_stride=2, head_blocks=1)
    model = PatchVSRModel.from_base(base, PatchVSRConfig(lora_rank=2, lora_alpha=2.0, cond_freq_dim=16,
                                                         train_head=True))
    assert head_trainable(model) == {"head"}
    with torch.no_grad():
        model.base.head[0].conv1.weight.add_(1.0)                # as if trained
    model.save_pretrained(tmp_path / "m")
    loaded = PatchVSRModel.from_pretrained(tmp_path / "m")
    assert torch.equal(loaded.base.head[0].conv1.weight, model.base.head[0].conv1.weight)
    assert head_trainable(loaded) == {"head"} and loaded.config.train_head


def test_head_norm_under_bf16_matches_rms_norm_and_trains():
    from patchvsr.models.layers import HeadNorm

    norm = HeadNorm(8, eps=1e-6)
    x = torch.randn(3, 5, 2, 8, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16).requires_grad_()
    out = norm(x)
    reference = torch.nn.functional.rms_norm(x.float(), (8,), norm.weight, 1e-6)
    torch.testing.assert_close(out.float(), reference, rtol=1e-2, atol=1e-2)  # bf16 rounding
    out.float().square().sum().backward()
    assert x.grad is not None and norm.weight.grad is not None and torch.isfinite(x.grad.float()).all()

"""The training recipe of lite's third piece: the realistic chain's proportions, grainy sources, the H.264
CRF 30 validation split, and growing the output head of a trained model (new blocks start as the identity)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from patchvsr.cli import main
from patchvsr.errors import InputError
from patchvsr.models import PatchVSRConfig, PatchVSRModel, VideoDiT
from patchvsr.models.dit import BaseInjection, grow_head_state
from model_helpers import perturb_
from patchvsr.train import monitor, realistic, stages
from patchvsr.train.degrade import DegradeConfig, degrade, degrade_clip, downsample, quantize
from patchvsr.train.samples import VALIDATION_SPLITS, validation_degradation

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIG = DegradeConfig(window=16, frames=2, scale_range=(4.0, 4.0), bicubic_share=1.0)


def texture(frames: int = 3, size: int = 48, seed: int = 0) -> torch.Tensor:
    """(3, T, S, S) in [0, 1]: smooth random texture (compresses like a picture, not like white noise)."""
    low = torch.rand(frames, 3, size // 12, size // 12, generator=torch.Generator().manual_seed(seed))
    up = torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)
    return up.clamp(0, 1).transpose(0, 1).contiguous()


def sample(config: DegradeConfig, seed: int = 0, clip: torch.Tensor | None = None) -> dict:
    return degrade_clip(texture() if clip is None else clip, config, torch.Generator().manual_seed(seed))


def test_the_crf_split_writes_the_lr_as_h264_medium_and_measures_its_strength():
    config = dataclasses.replace(CONFIG, frames=3, full_frame=True, window=96, lr_crf=30)
    clip = texture(size=96)
    coded, clean = sample(config, clip=clip), sample(dataclasses.replace(config, lr_crf=None), clip=clip)
    frames = clip.transpose(0, 1)                                               # the full-frame canvas
    small = quantize(downsample(downsample(frames, (96, 96), bicubic=True), (24, 24), bicubic=True))
    expected = realistic.h264(small, 30, preset="medium")
    assert float(coded["degradation"]) == pytest.approx(realistic.strength(expected, small), abs=1e-6)
    assert 0.2 < float(coded["degradation"]) < 1.0 and float(clean["degradation"]) == 0.0
    assert not torch.equal(coded["lr_up"], clean["lr_up"])
    torch.testing.assert_close(coded["hr"], clean["hr"], rtol=0, atol=0)       # the target is untouched
    again = sample(config, seed=5, clip=clip)                                     # no random draw in it
    torch.testing.assert_close(coded["lr_up"], again["lr_up"], rtol=0, atol=0)


def test_validation_splits_are_the_evaluation_protocol():
    config = DegradeConfig(realistic_share=0.6, soft_share=0.2, grain_share=0.15, scale_range=(2.0, 4.0))
    splits = {split: validation_degradation(config, split) for split in VALIDATION_SPLITS}
    for split, value in splits.items():
        assert value.scale_range == (4.0, 4.0) and value.realistic_share == 0.0 and value.grain_share == 0.0
        assert value.soft_share == (1.0 if split == "soft" else 0.0)
        assert value.lr_crf == (30 if split == "crf30" else None)
    with pytest.raises(ValueError, match="split"):
        validation_degradation(config, "crf20")


def test_grainy_sources_put_the_grain_in_the_target_and_count_as_clean():
    flat = torch.full((3, 3, 48, 48), 0.5)
    plain, grainy = (sample(dataclasses.replace(CONFIG, grain_share=share), clip=flat) for share in (0.0, 1.0))
    assert float(plain["hr"].std()) == 0.0
    assert 2.0 / 127.5 < float(grainy["hr"].std()) < 11.0 / 127.5                 # GRAIN_STD levels, [-1, 1]
    assert float(grainy["degradation"]) == 0.0
    assert float(grainy["lr_up"].std()) < float(grainy["hr"].std())             # downscaling averages it


def test_the_mix_sets_what_corrupt_does():
    lr = quantize(texture().transpose(0, 1)[..., :16, :16])
    untouched = realistic.corrupt(lr, torch.Generator().manual_seed(0), realistic.Mix(0.0, 0.0, 0.0))
    torch.testing.assert_close(untouched, lr, rtol=0, atol=0)
    for preset in ("veryfast", "medium"):
        generator = torch.Generator().manual_seed(1)
        coded = realistic.corrupt(lr, generator, realistic.Mix(0.0, 0.0, 1.0, (preset,)))
        replay = torch.Generator().manual_seed(1)
        replay_draws = [float(torch.rand((), generator=replay, dtype=torch.float64)) for _ in range(3)]
        crf = round(realistic.H264_CRF[0] + (realistic.H264_CRF[1] - realistic.H264_CRF[0]) * replay_draws[2])
        torch.testing.assert_close(coded, realistic.h264(lr, crf, preset), rtol=0, atol=0)
    both = realistic.Mix(0.0, 0.0, 1.0, ("veryfast", "medium"))
    assert {_preset_drawn(both, seed) for seed in range(12)} == {"veryfast", "medium"}


def _preset_drawn(mix: realistic.Mix, seed: int) -> str:
    """Which preset `corrupt` draws for `seed` (the draw after noise, choice and CRF)."""
    generator = torch.Generator().manual_seed(seed)
    draws = [float(torch.rand((), generator=generator, dtype=torch.float64)) for _ in range(4)]
    return mix.h264_presets[int(draws[3] * len(mix.h264_presets))]


@pytest.mark.parametrize(("fields", "message"), [
    ({"jpeg_share": 0.6, "h264_share": 0.6}, "at most 1"),
    ({"h264_presets": ("placebo2",)}, "h264_presets"),
    ({"h264_presets": ()}, "h264_presets"),
    ({"lr_noise_share": 1.5}, "noise_share"),
    ({"grain_share": -0.1}, "grain_share"),
    ({"lr_crf": 60}, "lr_crf"),
])
def test_config_rejects_bad_recipes(fields, message):
    with pytest.raises(ValueError, match=message):
        DegradeConfig(**fields)


def test_default_recipe_is_the_first_runs_one():
    assert DegradeConfig().mix == realistic.Mix(noise_share=0.6, jpeg_share=0.4, h264_share=0.4,
                                                h264_presets=("veryfast",))
    batch = torch.stack([texture(seed=s) for s in range(2)])
    config = dataclasses.replace(CONFIG, realistic_share=1.0)
    explicit = dataclasses.replace(config, lr_noise_share=0.6, jpeg_share=0.4, h264_share=0.4)
    a, b = (degrade(batch, c, [torch.Generator().manual_seed(i) for i in range(2)]) for c in (config, explicit))
    assert all(torch.equal(getattr(a, name), getattr(b, name)) for name in vars(a))


def test_gains_text_names_every_split_it_has():
    row = {"val_psnr": 31.0, "val_psnr_bicubic": 29.0, "val_psnr_soft": 36.0, "val_psnr_soft_bicubic": 35.5}
    assert monitor.gains_text(row) == "+2.00 dB (soft sources +0.50 dB)"
    row |= {"val_psnr_crf30": 28.0, "val_psnr_crf30_bicubic": 27.75}
    assert monitor.gains_text(row) == "+2.00 dB (soft sources +0.50 dB, H.264 CRF 30 +0.25 dB)"
    assert {"val_psnr_crf30", "val_psnr_crf30_bicubic"} <= set(monitor.COLUMNS)


# ----- growing the head -----------------------------------------------------------------------------------------
def lite_like_base(blocks: int = 1) -> VideoDiT:
    return perturb_(VideoDiT.from_preset("test", stem_stride=2, head_blocks=blocks), seed=0, std=0.05)


def test_the_training_plot_has_legends_where_it_has_lines_and_warns_about_none(tmp_path, recwarn):
    empty = monitor.TrainLog(tmp_path / "empty.csv")                       # a finished run exporting again
    monitor.plot_log(empty.path, tmp_path / "empty.png")
    log = monitor.TrainLog(tmp_path / "log.csv")
    for step in (10, 20):
        log.append(step=step, loss=1.0 / step, val_loss=0.5, val_psnr=30.0, val_psnr_bicubic=29.0)
    monitor.plot_log(log.path, tmp_path / "log.png")
    assert (tmp_path / "empty.png").stat().st_size > 0 and (tmp_path / "log.png").stat().st_size > 0
    assert not [w for w in recwarn if "legend" in str(w.message)]


def test_a_grown_head_computes_exactly_what_the_old_one_did():
    base = lite_like_base(1)
    grown = base.with_head_blocks(3, seed=4)
    assert grown.config.head_blocks == 3 and grown.config["head_blocks"] == 3
    x, t = torch.randn(2, 3, 2, 16, 16, generator=torch.Generator().manual_seed(0)), torch.rand(2)
    with torch.no_grad():
        torch.testing.assert_close(grown(x, t), base(x, t), rtol=0, atol=0)
    assert torch.equal(grown.head[3].weight, base.head[1].weight)             # the conv after the blocks moved up
    assert float(grown.head[1].conv1.weight.detach().abs().sum()) > 0
    assert float(grown.head[2].conv2.weight.detach().abs().sum()) == 0
    with pytest.raises(ValueError, match="only grow"):
        grown.with_head_blocks(2)


def test_grow_head_state_renames_only_what_follows_the_blocks():
    state = {"head.0.conv1.weight": 0, "head.1.weight": 1, "head.3.bias": 3, "stem.weight": 9, "base.head.1.w": 5}
    fresh = {"head.1.conv1.weight": 7, "head.2.conv2.bias": 8, "head.3.weight": -1, "stem.weight": -1}
    assert grow_head_state(state, "head.", 1, 3, fresh) == {
        "head.0.conv1.weight": 0, "head.3.weight": 1, "head.5.bias": 3, "stem.weight": 9, "base.head.1.w": 5,
        "head.1.conv1.weight": 7, "head.2.conv2.bias": 8}


@pytest.fixture
def lite_folders(tmp_path):
    """A stage-1 'lite' base and a stage-2 model on it whose head (trained, as in stage 2) differs from the base's."""
    base = perturb_(VideoDiT.from_preset("lite"), seed=0, std=0.02)
    base.save_pretrained(str(tmp_path / "base"))
    model = stages.build_model(stages.ModelSpec(stage="adapter", preset="lite", base=str(tmp_path / "base")), 0)
    perturb_(model, seed=1, std=0.02, only_trainable=True)
    model.save_pretrained(tmp_path / "init")
    return tmp_path / "base", tmp_path / "init"


def test_a_fine_tune_may_grow_the_head_of_its_init_model(lite_folders):
    base, init = lite_folders
    spec = stages.ModelSpec(stage="adapter", preset="lite", base=str(base), init=str(init))
    plain, grown = (stages.build_model(dataclasses.replace(spec, head_blocks=blocks), 0).eval()
                    for blocks in (None, 4))
    assert (plain.base.config.head_blocks, grown.base.config.head_blocks) == (2, 4)
    trainable = {name for name, _ in stages.trainable(grown)}
    assert {"base.head.2.conv1.weight", "base.head.3.conv2.weight"} <= trainable
    clips = torch.rand(1, 3, 4, 64, 64, generator=torch.Generator().manual_seed(0))
    batch = degrade(clips, DegradeConfig(window=64, frames=4), [torch.Generator().manual_seed(0)])
    z, t = torch.zeros_like(batch.hr), torch.ones(1)
    with torch.no_grad():   # the base alone is bit-exact (above); through the adapter, oneDNN on some CPUs
        # (AMD Zen 4) rounds differently between the two models: 1e-6 here, against outputs of order 1
        torch.testing.assert_close(stages.Trainee(grown)(z, t, batch), stages.Trainee(plain)(z, t, batch),
                                   rtol=0, atol=1e-5)
    with pytest.raises(InputError, match="can only grow"):
        stages.build_model(dataclasses.replace(spec, head_blocks=1), 0)
    tiny_base = VideoDiT.from_preset("test")
    tiny_base.save_pretrained(str(base.parent / "test_base"))
    with pytest.raises(InputError, match="does not train the head"):
        stages.build_model(stages.ModelSpec(stage="adapter", preset="test", base=str(base.parent / "test_base"),
                                            head_blocks=2), 0)


def test_a_tail_starts_as_the_identity_and_its_hint_reaches_the_output():
    base = lite_like_base(1)
    tailed = base.with_tail(4, seed=5)
    assert tailed.config.tail_channels == 4 and base.tail is None
    x, t = torch.randn(2, 3, 2, 16, 16, generator=torch.Generator().manual_seed(0)), torch.rand(2)
    hint = torch.randn(2, 4, 2, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(tailed(x, t, injection=BaseInjection(tail=hint)), base(x, t), rtol=0, atol=0)
        perturb_(tailed.tail.conv_out, seed=2, std=0.05)
        with_hint, without = tailed(x, t, injection=BaseInjection(tail=hint)), tailed(x, t)
    assert not torch.allclose(with_hint, without) and not torch.allclose(without, base(x, t))
    with pytest.raises(ValueError, match="already"):
        tailed.with_tail(4)


def test_a_fine_tune_may_add_a_tail_to_its_init_model(lite_folders, tmp_path):
    base, init = lite_folders
    spec = stages.ModelSpec(stage="adapter", preset="lite", base=str(base), init=str(init))
    plain, tailed = (stages.build_model(dataclasses.replace(spec, tail_channels=width), 0).eval()
                     for width in (None, 8))
    assert plain.base.tail is None and tailed.base.config.tail_channels == 8
    trainable = {name for name, _ in stages.trainable(tailed)}
    assert {"base.tail.conv_in.weight", "base.tail.conv_out.weight", "adapter.tail_proj.weight"} <= trainable
    clips = torch.rand(1, 3, 4, 64, 64, generator=torch.Generator().manual_seed(0))
    batch = degrade(clips, DegradeConfig(window=64, frames=4), [torch.Generator().manual_seed(0)])
    z, t = torch.zeros_like(batch.hr), torch.ones(1)
    with torch.no_grad():
        torch.testing.assert_close(stages.Trainee(tailed)(z, t, batch), stages.Trainee(plain)(z, t, batch),
                                   rtol=0, atol=1e-5)
    perturb_(tailed, seed=3, std=0.02, only_trainable=True)
    tailed.save_pretrained(tmp_path / "tailed")
    loaded = PatchVSRModel.from_pretrained(tmp_path / "tailed")
    assert all(torch.equal(value, tailed.state_dict()[name]) for name, value in loaded.state_dict().items())
    again = stages.build_model(dataclasses.replace(spec, init=str(tmp_path / "tailed"), tail_channels=8), 0)
    key = "base.tail.conv_out.weight"
    assert torch.equal(again.state_dict()[key], tailed.state_dict()[key])
    with pytest.raises(InputError, match="tail of 8 channels"):
        stages.build_model(dataclasses.replace(spec, init=str(tmp_path / "tailed")), 0)


def test_cli_rejects_a_head_for_stage_one(tmp_path, capsys):
    assert main(["train", "base", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--preset", "test",
                 "--head-blocks", "3"]) == 2
    assert "--head-blocks" in capsys.readouterr().err


@pytest.mark.parametrize("value, message", [("4,2", "scale_range"), ("4", "--scale-range"), ("x,4", "--scale-range")])
def test_cli_rejects_a_bad_scale_range(tmp_path, capsys, value, message):
    assert main(["train", "base", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--preset", "test",
                 "--scale-range", value]) == 2
    assert message in capsys.readouterr().err


def test_the_scale_range_bounds_the_factors_drawn():
    batch = torch.stack([texture(seed=s) for s in range(4)])
    generators = lambda: [torch.Generator().manual_seed(i) for i in range(4)]  # noqa: E731
    fixed = degrade(batch, CONFIG, generators())
    assert torch.allclose(fixed.scale, torch.full((4,), 4.0), atol=0.2)   # the LR side is rounded
    drawn = degrade(batch, dataclasses.replace(CONFIG, scale_range=(2.0, 3.0)), generators()).scale
    assert drawn.min() >= 1.8 and drawn.max() <= 3.2 and drawn.unique().numel() > 1


def test_a_grown_model_round_trips_through_its_folder(tmp_path):
    base = lite_like_base(1).with_head_blocks(2, seed=1)
    model = PatchVSRModel.from_base(base, PatchVSRConfig(lora_rank=2, lora_alpha=2.0, cond_freq_dim=16,
                                                         train_head=True))
    model.save_pretrained(tmp_path / "m")
    loaded = PatchVSRModel.from_pretrained(tmp_path / "m")
    assert loaded.base.config.head_blocks == 2
    assert all(torch.equal(value, model.state_dict()[name]) for name, value in loaded.state_dict().items())


def test_a_model_loads_in_a_dtype_without_the_diffusers_cast_warning(tmp_path, monkeypatch):
    from diffusers.models import modeling_utils

    warnings = []
    monkeypatch.setattr(modeling_utils.logger, "warning", lambda message, *args: warnings.append(message))
    base = lite_like_base(1).with_head_blocks(2, seed=1)
    PatchVSRModel.from_base(base, PatchVSRConfig(lora_rank=2, lora_alpha=2.0, cond_freq_dim=16)).save_pretrained(
        tmp_path / "m")
    loaded = PatchVSRModel.from_pretrained(tmp_path / "m", torch_dtype=torch.bfloat16)
    assert {p.dtype for p in loaded.parameters()} == {torch.bfloat16}
    assert base.to(torch.float64) is base and warnings == ["There are modules in VideoDiT that should be kept "
                                                           "in float32: []. Casting directly with `to()` can lead to "
                                                           "inconsistent results; set `torch_dtype` in "
                                                           "`from_pretrained()` instead to keep these modules in "
                                                           "float32."]   # the warning the cast avoids

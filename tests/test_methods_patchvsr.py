"""The PatchVSR upscaler: model + tiling + sampler glue, on a tiny random-weight model (no downloads)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from patchvsr.api import upscale_stream
from patchvsr.consistency import back_project
from patchvsr.errors import InputError, OptionError
from patchvsr.methods import get_upscaler, parse_method
from patchvsr.methods.patchvsr import DEFAULT_BATCH, SHIPPED, SamplerOptions, batch_size, load_shipped, load_upscaler
from patchvsr.models import PatchVSRModel
from model_helpers import perturb_

CPU = torch.device("cpu")


def _save(folder, perturb: bool) -> str:
    model = PatchVSRModel.from_preset("test", seed=0)
    if perturb:
        perturb_(model, seed=1)
    model.save_pretrained(folder)
    (folder / "training.json").write_text(json.dumps({"residual_std": 0.12}))
    return str(folder)


@pytest.fixture(scope="module")
def fresh_model(tmp_path_factory) -> str:
    return _save(tmp_path_factory.mktemp("fresh"), perturb=False)


@pytest.fixture(scope="module")
def trained_like_model(tmp_path_factory) -> str:
    return _save(tmp_path_factory.mktemp("perturbed"), perturb=True)


def _clip(seed: int = 0, frames: int = 2, size: tuple[int, int] = (9, 11)) -> torch.Tensor:
    return torch.rand((frames, 3, *size), generator=torch.Generator().manual_seed(seed))


def _bicubic(clip: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(clip, size=size, mode="bicubic", align_corners=False).clamp(0, 1)


@pytest.mark.parametrize("fusion", ["weighted", "average", "none", "shifted"])
def test_zero_initialised_model_in_fidelity_mode_returns_bicubic(fresh_model, fusion):
    """A fresh base has a zero output head: v = 0, so one step from z = 0 gives z0 = 0, i.e. HR = V_up (and
    with the back-projection, V_up made consistent with the input)."""
    upscaler = load_upscaler(fresh_model, CPU, fusion=fusion, dtype="fp32", consistency="0")
    clip = _clip()
    out = upscaler.upscale_clip(clip, (36, 44), clip_index=0)
    torch.testing.assert_close(out, _bicubic(clip, (36, 44)), atol=1e-6, rtol=0)
    consistent = load_upscaler(fresh_model, CPU, fusion=fusion, dtype="fp32", temporal_radius=0).upscale_clip(
        clip, (36, 44), 0)
    torch.testing.assert_close(consistent, back_project(_bicubic(clip, (36, 44)), clip), atol=1e-6, rtol=0)


def test_output_shape_range_and_stats(trained_like_model):
    upscaler = load_upscaler(trained_like_model, CPU, dtype="fp32", steps=2)
    out = upscaler.upscale_clip(_clip(frames=2, size=(7, 5)), (21, 15), clip_index=3)
    assert out.shape == (2, 3, 21, 15) and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    # 21x15 canvas with 16-px windows: 2x1 primary grid + 1 horizontal-seam window
    assert upscaler.describe() == {"windows_per_clip": 3, "steps": 2, "fusion": "weighted", "temporal_radius": 8,
                                   "dtype": "fp32", "dtype_reason": "--dtype fp32"}
    # default clip: DEFAULT_CLIP_FRAMES (16), a multiple of the model's 2 native frames; a quarter cross-faded
    assert upscaler.clip_frames == 16 and upscaler.clip_overlap == 4
    assert load_upscaler(trained_like_model, CPU, clip_frames=6).clip_frames == 6


def test_a_long_clip_runs_the_model_on_segments_of_its_native_length(trained_like_model):
    """A 6-frame clip of a 2-frame model is three independent model runs (the filter off): the same frames as
    three 2-frame clips upscaled one by one; a model run over all six frames would differ."""
    long = load_upscaler(trained_like_model, CPU, dtype="fp32", clip_frames=6, temporal_radius=0)
    short = load_upscaler(trained_like_model, CPU, dtype="fp32", clip_frames=2, temporal_radius=0)
    assert (long.segment_frames, short.segment_frames) == (2, 2)
    clip = _clip(frames=6)
    whole = long.upscale_clip(clip, (27, 33), clip_index=0)
    parts = torch.cat([short.upscale_clip(clip[i:i + 2], (27, 33), clip_index=0) for i in (0, 2, 4)])
    torch.testing.assert_close(whole, parts, atol=1e-6, rtol=0)
    joint = load_upscaler(trained_like_model, CPU, dtype="fp32", clip_frames=6, temporal_radius=0)
    joint.segment_frames = 6
    assert (joint.upscale_clip(clip, (27, 33), clip_index=0) - whole).abs().max() > 1e-3


def test_detail_mode_is_seeded_by_clip_index(trained_like_model):
    upscaler = load_upscaler(trained_like_model, CPU, dtype="fp32", steps=3, seed=5)
    clip = _clip()
    first = upscaler.upscale_clip(clip, (18, 22), clip_index=0)
    again = upscaler.upscale_clip(clip, (18, 22), clip_index=0)
    other = upscaler.upscale_clip(clip, (18, 22), clip_index=1)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_result_does_not_depend_on_window_batch_size(trained_like_model):
    clip = _clip(seed=2)
    one = load_upscaler(trained_like_model, CPU, dtype="fp32", steps=2, batch=1).upscale_clip(clip, (36, 44), 0)
    seven = load_upscaler(trained_like_model, CPU, dtype="fp32", steps=2, batch=7).upscale_clip(clip, (36, 44), 0)
    torch.testing.assert_close(one, seven, atol=1e-5, rtol=0)


def test_default_window_batch_depends_on_the_device():
    assert batch_size(SamplerOptions(), CPU) == DEFAULT_BATCH["cpu"] == 16
    assert batch_size(SamplerOptions(), torch.device("cuda")) == DEFAULT_BATCH["cuda"] == 256
    assert batch_size(SamplerOptions(batch=3), torch.device("cuda")) == 3


def test_start_time_below_one_stays_closer_to_bicubic(trained_like_model):
    """t0 < 1 starts from V_up noised to t0: less noise to remove than from pure noise at t0 = 1."""
    clip, size = _clip(seed=3), (36, 44)
    reference = _bicubic(clip, size)
    errors = {}
    for t0 in (1.0, 0.3):
        out = load_upscaler(trained_like_model, CPU, dtype="fp32", steps=4, t0=t0).upscale_clip(clip, size, 0)
        errors[t0] = (out - reference).abs().mean().item()
    assert errors[0.3] < errors[1.0]


def test_fusion_auto_is_band_for_one_step_and_weighted_for_more(trained_like_model):
    for steps, fusion in ((1, "band"), (2, "weighted")):
        upscaler = load_upscaler(trained_like_model, CPU, dtype="fp32", steps=steps)
        upscaler.upscale_clip(_clip(frames=2, size=(7, 5)), (21, 15), clip_index=0)
        assert upscaler.describe()["fusion"] == fusion == upscaler.window_plan((21, 15)).fusion
    assert SamplerOptions(fusion="none").fusion_mode == "none"


def test_consecutive_clips_reuse_their_shared_segments_bit_for_bit(trained_like_model):
    video = _clip(seed=5, frames=28, size=(6, 5))
    upscaler = load_upscaler(trained_like_model, CPU, dtype="fp32")  # clips of 16 sharing 4; segments of 2
    assert upscaler.reuses_segments and upscaler.clip_overlap == 4
    upscaler.upscale_clip(video[:16], (18, 15), 0)
    reports = []
    second = upscaler.upscale_clip(video[12:], (18, 15), 1, progress=reports.append)
    fresh = load_upscaler(trained_like_model, CPU, dtype="fp32")
    assert torch.equal(second, fresh.upscale_clip(video[12:], (18, 15), 1))
    assert len(reports) == 6 and reports[-1] == 1.0  # 8 segments, 2 taken from the first clip: 6 model calls
    assert not torch.equal(fresh.upscale_clip(video[13:], (18, 15), 1), second)  # other frames: computed
    detail = load_upscaler(trained_like_model, CPU, dtype="fp32", steps=2)
    assert not detail.reuses_segments  # sampling from noise: each clip draws its own


def test_reduced_precision_weights_cast_once_give_the_autocast_result(trained_like_model):
    clip = _clip(seed=6)
    upscaler = load_upscaler(trained_like_model, CPU, dtype="bf16")
    linear = upscaler.model.base.blocks[0].attn1.to_q
    assert linear.weight.dtype == torch.bfloat16 and upscaler.model.base.final_norm.weight is None
    plain = load_upscaler(trained_like_model, CPU, dtype="fp32")  # fp32 weights, cast by autocast per call
    plain.dtype = ("bf16", "test")
    assert torch.equal(upscaler.upscale_clip(clip, (36, 44), 0), plain.upscale_clip(clip, (36, 44), 0))


def test_bf16_autocast_is_close_to_fp32(trained_like_model):
    clip = _clip(seed=4)
    exact = load_upscaler(trained_like_model, CPU, dtype="fp32").upscale_clip(clip, (36, 44), 0)
    fast = load_upscaler(trained_like_model, CPU, dtype="bf16").upscale_clip(clip, (36, 44), 0)
    assert (exact - fast).abs().max() < 0.02


@pytest.mark.parametrize("options, word", [
    (dict(steps=0), "--steps"), (dict(fusion="blend"), "--fusion"), (dict(batch=0), "--batch"),
    (dict(t0=0.0), "--t0"), (dict(t0=1.5), "--t0"), (dict(dtype="int8"), "--dtype"),
    (dict(window=18), "--window"), (dict(clip_frames=0), "--clip-frames"),
    (dict(temporal_radius=-1), "--temporal-radius"),
])
def test_bad_options_are_option_errors(trained_like_model, options, word):
    with pytest.raises(OptionError, match=word):
        load_upscaler(trained_like_model, CPU, **options)


def test_model_folder_through_the_registry(trained_like_model):
    upscaler = get_upscaler(trained_like_model, device="cpu", steps=1)
    assert upscaler.upscale_clip(_clip(), (18, 22), 0).shape == (2, 3, 18, 22)


def test_folder_without_training_metadata_is_refused(tmp_path):
    PatchVSRModel.from_preset("test", seed=0).save_pretrained(tmp_path)
    with pytest.raises(InputError, match="residual_std"):
        load_upscaler(tmp_path, CPU)
    with pytest.raises(InputError, match="not a PatchVSR model folder"):
        load_upscaler(tmp_path / "missing", CPU)


@pytest.mark.parametrize("name", ["lite", "tiny"])
def test_shipped_model_upscales_a_16_frame_clip(name):
    if not (SHIPPED / name / "config.json").is_file():
        pytest.skip(f"no shipped {name} weights in this tree")
    upscaler = get_upscaler(name, device="cpu")
    frames = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    out = list(upscale_stream(iter(frames), upscaler, (64, 64)))
    assert len(out) == 16 and all(frame.shape == (64, 64, 3) and frame.dtype == np.uint8 for frame in out)


def test_unshipped_model_name_is_an_option_error(monkeypatch, tmp_path):
    monkeypatch.setattr("patchvsr.methods.patchvsr.SHIPPED", tmp_path)
    with pytest.raises(OptionError, match="shipped weights are missing"):
        load_shipped("tiny", CPU)


def test_method_specs_carry_typed_model_options():
    assert parse_method("bicubic") == ("bicubic", {})
    assert parse_method("tiny:steps=4:t0=0.5:fusion=average") == ("tiny", {"steps": 4, "t0": 0.5, "fusion": "average"})
    assert parse_method("runs/x/model:clip-frames=8") == ("runs/x/model", {"clip_frames": 8})
    assert parse_method("runs/a:b/model:steps=2") == ("runs/a:b/model", {"steps": 2})


@pytest.mark.parametrize("spec, word", [("tiny:speed=2", "bad method option"), ("tiny:steps=two", "bad value")])
def test_bad_method_specs_are_option_errors(spec, word):
    with pytest.raises(OptionError, match=word):
        parse_method(spec)


def test_method_spec_options_reach_the_model(trained_like_model):
    from patchvsr.eval.evaluate import make_upscaler

    upscaler = make_upscaler(f"{trained_like_model}:steps=3:t0=0.5", "cpu")
    assert (upscaler.options.steps, upscaler.options.t0) == (3, 0.5)


def test_default_model_is_the_embedded_one_unless_the_environment_names_another(monkeypatch):
    from patchvsr.methods import default_model

    monkeypatch.delenv("PATCHVSR_MODEL", raising=False)
    assert default_model() == "lite"
    monkeypatch.setenv("PATCHVSR_MODEL", "lanczos")
    assert default_model() == "lanczos" and get_upscaler(device="cpu").name == "lanczos"


def test_ship_writes_a_half_size_folder_that_upscales_like_the_original(trained_like_model, tmp_path):
    from patchvsr.train.ship import ship

    target = tmp_path / "weights" / "tiny"
    sizes = ship(trained_like_model, target, notes="## Evaluation\n\nnumbers")
    assert {"config.json", "training.json", "model_card.md", "base/diffusion_pytorch_model.safetensors"} <= set(sizes)
    original = sum(path.stat().st_size for path in Path(trained_like_model).rglob("*.safetensors"))
    assert sum(size for name, size in sizes.items() if name.endswith(".safetensors")) < 0.6 * original
    card = (target / "model_card.md").read_text()
    assert card.rstrip().endswith("numbers") and not (tmp_path / "weights" / "tiny.partial").exists()
    clip = _clip(seed=5)
    exact = load_upscaler(trained_like_model, CPU, dtype="fp32").upscale_clip(clip, (36, 44), 0)
    half = load_upscaler(target, CPU, dtype="fp32").upscale_clip(clip, (36, 44), 0)
    assert (exact - half).abs().max() < 2e-3


def test_a_model_shipped_as_fidelity_only_warns_in_detail_mode(trained_like_model, tmp_path, caplog):
    from patchvsr.train.ship import ship

    ship(trained_like_model, tmp_path / "one_step", fidelity_only="its detail mode was never trained")
    ship(trained_like_model, tmp_path / "any")
    with caplog.at_level("WARNING", logger="patchvsr"):
        load_upscaler(tmp_path / "one_step", CPU, dtype="fp32")
        load_upscaler(tmp_path / "any", CPU, dtype="fp32", steps=4)
        assert not caplog.records  # the fidelity mode, or a model without the record: no warning
        load_upscaler(tmp_path / "one_step", CPU, dtype="fp32", steps=4)
    assert [r.getMessage() for r in caplog.records] == ["one_step is a one-step model: its detail mode was never "
                                                        "trained"]


def test_the_shipped_lite_model_is_fidelity_only_and_tiny_is_not():
    assert "fidelity_only" in json.loads((SHIPPED / "lite" / "training.json").read_text())
    assert "fidelity_only" not in json.loads((SHIPPED / "tiny" / "training.json").read_text())


def test_ship_refuses_an_untrained_folder(tmp_path):
    from patchvsr.train.ship import ship

    PatchVSRModel.from_preset("test", seed=0).save_pretrained(tmp_path / "model")
    with pytest.raises(InputError, match="training.json"):
        ship(tmp_path / "model", tmp_path / "tiny")


def test_temporal_filter_changes_only_the_added_detail(trained_like_model):
    clip = _clip(seed=6, frames=4, size=(12, 10))
    size = (48, 40)
    plain = load_upscaler(trained_like_model, CPU, dtype="fp32", temporal_radius=0).upscale_clip(clip, size, 0)
    filtered = load_upscaler(trained_like_model, CPU, dtype="fp32", temporal_radius=2).upscale_clip(clip, size, 0)
    up = _bicubic(clip, size)
    assert (plain - filtered).abs().max() > 1e-3  # the filter acts
    # it averages detail, so the detail's spread shrinks, and V_up stays the base of both
    assert (filtered - up).std() < (plain - up).std()


def test_cli_model_flags_are_the_model_options():
    """One list of model options: the sampler's fields, and flags of both `upscale` and `batch`."""
    import dataclasses

    from patchvsr.cli import build_parser
    from patchvsr.options import MODEL_OPTION_NAMES

    assert [field.name for field in dataclasses.fields(SamplerOptions)] == list(MODEL_OPTION_NAMES)
    parser = build_parser()
    for command in (["upscale", "in.mp4", "-o", "out.mp4"], ["batch", "in.mp4", "-o", "out"]):
        args = parser.parse_args([*command, "--clip-frames", "8", "--t0", "0.5", "--degradation", "0.3"])
        assert (args.clip_frames, args.t0, args.degradation, args.steps, args.crf) == (8, 0.5, "0.3", None, None)


@pytest.mark.parametrize("steps, batch", [(1, 1), (2, 2)])
def test_progress_inside_a_clip_counts_window_evaluations(trained_like_model, steps, batch):
    upscaler = load_upscaler(trained_like_model, CPU, dtype="fp32", steps=steps, batch=batch, clip_frames=4)
    fractions = []
    plain = upscaler.upscale_clip(_clip(frames=4), (21, 15), 0)
    out = upscaler.upscale_clip(_clip(frames=4), (21, 15), 0, progress=fractions.append)
    windows = upscaler.window_plan((21, 15)).windows_per_step  # 3 windows (see the stats test)
    segments = 4 // upscaler.segment_frames
    assert len(fractions) == segments * steps * -(-windows // batch)  # one report per model call
    assert fractions == sorted(fractions) and fractions[0] > 0 and fractions[-1] == 1.0
    torch.testing.assert_close(out, plain, rtol=0, atol=0)  # reporting changes nothing


def test_upscale_video_reports_frames_from_inside_the_first_clip(trained_like_model, make_video, tmp_path):
    from patchvsr.api import upscale_video

    reports = []
    upscale_video(make_video("in.mkv", size=(6, 5), frames=10), tmp_path / "out.mkv", scale=3,
                  model=trained_like_model, device="cpu", clip_frames=8, dtype="fp32",
                  progress=lambda done, total: reports.append((done, total)))
    assert reports[0] == (0, 10)  # the probe's total at once, before any work
    inside = [done for done, _ in reports if 0 < done < 6]  # before the first clip's 6 frames are written
    assert inside and any(done != int(done) for done in inside)
    assert [done for done, _ in reports] == sorted(done for done, _ in reports) and reports[-1] == (10, 10)


def test_estimate_counts_the_run_s_window_evaluations(trained_like_model, monkeypatch):
    upscaler = load_upscaler(trained_like_model, CPU, dtype="fp32", steps=2, clip_frames=4)
    ticks = iter(range(100))
    monkeypatch.setattr("patchvsr.methods.patchvsr.time.perf_counter", lambda: float(next(ticks)))
    windows = upscaler.window_plan((21, 15)).windows_per_step  # 3, all timed at once: 1 s per 3 windows
    clips = 3  # 10 frames in clips of 4 sharing 1: starts at 0, 3, 6
    segments = 4 // upscaler.segment_frames
    model = clips * segments * 2 * windows * (1.0 / 3)
    back_projection = clips * 4 * 1.0  # one frame timed (1 s), 4 per clip; frames below 16 px are not filtered
    assert upscaler.estimate_seconds((21, 15), 10, (7, 5)) == pytest.approx(model + back_projection)


def test_expected_duration_line_and_the_hint_for_long_runs(trained_like_model, make_video, tmp_path, capsys,
                                                           monkeypatch):
    from patchvsr.api import duration
    from patchvsr.cli import main
    from patchvsr.methods.patchvsr import PatchVSRUpscaler

    assert [duration(s) for s in (0.2, 45, 2040, 7500)] == ["1 s", "45 s", "34 min", "2 h 05 min"]
    monkeypatch.setattr(PatchVSRUpscaler, "estimate_seconds", lambda self, size, frames, input_size: 1900.0 * frames)
    args = ["upscale", str(make_video("in.mkv", size=(6, 5), frames=2)), "--model", trained_like_model,
            "--clip-frames", "2", "--dtype", "fp32"]
    assert main([*args, "-o", str(tmp_path / "a.mkv")]) == 0
    err = capsys.readouterr().err
    assert "expected about 1 h 03 min for 2 frames at this machine's speed (model and filters)" in err
    assert "over an hour: --model lanczos" in err
    assert main([*args, "-o", str(tmp_path / "b.mkv"), "-q"]) == 0
    assert capsys.readouterr().err == ""  # -q: no estimate, no hint

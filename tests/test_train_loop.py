"""Training loop: a few steps on a fixed batch lower the loss (both stages), `--resume` continues with the
identical next-step loss, checkpoints hold no pickle, and the CLI rejects what it should."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from patchvsr.cli import main
from patchvsr.errors import InputError, OptionError
from patchvsr.models import PatchVSRModel, VideoDiT
from model_helpers import perturb_
from patchvsr.train import data, loop, motion, stages, temporal
from patchvsr.train.checkpoint import load_checkpoint
from patchvsr.train.config import default_config


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A tiny prepared data set: 6 train + 2 val clips of 3 frames x 32 px from random-texture photos."""
    root = tmp_path_factory.mktemp("train_data")
    raw = root / "raw"
    raw.mkdir()
    rng = np.random.default_rng(0)
    for index in range(4):
        small = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
        Image.fromarray(small).resize((160, 120), Image.Resampling.BILINEAR).save(raw / f"photo{index}.png")
    clip = motion.ClipConfig(frames=3, size=32, min_energy=0.01, tries=2)
    config = data.DataConfig(clips=6, val_clips=2, probe_draws=2, skimage_images=False, clip=clip)
    data.prepare_data(root / "data", config, raw_dir=raw, log=lambda line: None)
    return root / "data"


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    """A stage-1 'test' base with non-zero weights (a fresh one has a zero output head)."""
    folder = tmp_path_factory.mktemp("base") / "model"
    perturb_(VideoDiT.from_preset("test"), seed=0, std=0.05).save_pretrained(str(folder))
    return folder


def config_for(stage, base_dir=None, **overrides):
    return default_config(stage, "test", model__base=None if base_dir is None else str(base_dir), workers=0,
                          precision="fp32", **overrides)


# The whole base trains fast; the adapter starts from zero-initialised gates on a frozen random base.
@pytest.mark.parametrize(("stage", "lr", "ratio"), [("base", 1e-2, 0.7), ("adapter", 3e-2, 0.95)])
def test_a_few_steps_on_a_fixed_batch_lower_the_loss(stage, lr, ratio, data_dir, base_dir, tmp_path):
    config = config_for(stage, base_dir if stage == "adapter" else None, batch=4, lr=lr)
    trainer = loop.Trainer(config, data_dir, tmp_path / "run", resume=False, device="cpu", log=lambda line: None)
    batch = next(loop._train_batches(config, data_dir, 0, trainer.accelerator))
    losses = [trainer.step(batch) for _ in range(12)]
    assert losses[-1] < ratio * losses[0], losses
    assert trainer.state.step == 12 and trainer.state.samples == 48


@pytest.mark.parametrize("temporal_weight", [0.0, 1.0])
def test_resume_gives_the_identical_next_step_loss(temporal_weight, data_dir, base_dir, tmp_path):
    config = config_for("adapter", base_dir, val_every=100, temporal_weight=temporal_weight)
    quiet = dict(device="cpu", log=lambda line: None)
    straight = loop.train(config, data_dir, tmp_path / "straight", steps=3, **quiet)
    loop.train(config, data_dir, tmp_path / "resumed", steps=2, **quiet)
    with pytest.raises(Exception, match="exists: pass --resume"):
        loop.Trainer(config, data_dir, tmp_path / "resumed", resume=False, **quiet)
    resumed = loop.train(config, data_dir, tmp_path / "resumed", steps=3, resume=True, **quiet)
    assert straight["steps"] == resumed["steps"] == 3

    def losses(run):
        rows = (tmp_path / run / "log.csv").read_text().splitlines()[1:]
        return [row.split(",")[4] for row in rows if row.split(",")[4]]

    assert len(losses("straight")) == 3 and losses("resumed") == losses("straight")
    assert resumed["val_psnr"] == straight["val_psnr"]
    a, b = load_checkpoint(tmp_path / "straight" / "checkpoint"), load_checkpoint(tmp_path / "resumed" / "checkpoint")
    for name in a.model:
        torch.testing.assert_close(a.model[name], b.model[name], rtol=0, atol=0)
    for key in ("step", "samples", "last_val"):
        assert a.state["run"][key] == b.state["run"][key]
    assert a.state["scheduler"] == b.state["scheduler"]
    for key in a.optimizer["state"][0]:
        torch.testing.assert_close(a.optimizer["state"][0][key], b.optimizer["state"][0][key], rtol=0, atol=0)


def test_checkpoint_and_export_hold_no_pickle(data_dir, base_dir, tmp_path):
    loop.train(config_for("adapter", base_dir), data_dir, tmp_path / "run", steps=1, device="cpu",
               log=lambda line: None)
    files = sorted(p.relative_to(tmp_path / "run").as_posix() for p in (tmp_path / "run").rglob("*") if p.is_file())
    assert {"checkpoint/state.json", "checkpoint/model.safetensors", "checkpoint/optimizer.safetensors",
            "model/config.json", "model/training.json", "model/model_card.md", "log.csv", "log.png"} <= set(files)
    assert not [f for f in files if f.endswith((".pt", ".pth", ".bin", ".pkl", ".ckpt"))]
    training = json.loads((tmp_path / "run" / "model" / "training.json").read_text())
    assert training["residual_std"] == pytest.approx(0.12) and training["steps"] == 1


def test_cli_rejects_bad_options_with_one_line(data_dir, tmp_path, capsys):
    assert main(["train", "adapter", "--data", str(data_dir), "--out", str(tmp_path / "x"), "--preset", "test",
                 "--device", "cpu"]) == 2
    assert "needs the stage-1 model folder" in capsys.readouterr().err
    assert main(["train", "base", "--data", str(data_dir), "--out", str(tmp_path / "y"), "--preset", "test",
                 "--lr", "-1", "--device", "cpu"]) == 2
    assert "lr must be > 0" in capsys.readouterr().err
    assert main(["train", "base", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "z"),
                 "--preset", "test", "--device", "cpu", "--steps", "1", "--workers", "0"]) == 2
    assert "run `patchvsr data" in capsys.readouterr().err


def test_learning_rate_warms_up_stays_then_decays_linearly_to_zero():
    config = config_for("base", warmup_steps=4, decay_start=10, decay_steps=5)
    factors = [config.lr_factor(step) for step in range(17)]
    assert factors[:5] == [0.25, 0.5, 0.75, 1.0, 1.0] and factors[10] == 1.0
    assert factors[11:16] == pytest.approx([0.8, 0.6, 0.4, 0.2, 0.0]) and factors[16] == 0.0
    assert config.decay_end == 15 and config_for("base").decay_end is None
    with pytest.raises(ValueError, match="go together"):
        config_for("base", decay_start=3)


def test_a_resumed_run_may_gain_a_decay_and_then_matches_a_straight_decayed_run(data_dir, base_dir, tmp_path):
    quiet = dict(device="cpu", log=lambda line: None)
    decayed = config_for("adapter", base_dir, val_every=100, decay_start=2, decay_steps=2)
    straight = loop.train(decayed, data_dir, tmp_path / "straight", steps=4, **quiet)
    loop.train(config_for("adapter", base_dir, val_every=100), data_dir, tmp_path / "later", steps=2, **quiet)
    with pytest.raises(OptionError, match="at or after the checkpoint's step 2"):
        loop.Trainer(config_for("adapter", base_dir, val_every=100, decay_start=1, decay_steps=3), data_dir,
                     tmp_path / "later", resume=True, **quiet)
    later = loop.train(decayed, data_dir, tmp_path / "later", steps=4, resume=True, **quiet)
    assert later["val_psnr"] == straight["val_psnr"]
    rates = [row.split(",")[3] for row in (tmp_path / "later" / "log.csv").read_text().splitlines()[1:]]
    assert [float(rate) for rate in rates if rate][-2:] == pytest.approx([decayed.lr * 0.5, 0.0])
    assert load_checkpoint(tmp_path / "later" / "checkpoint").state["config"]["decay_start"] == 2


def test_a_decay_not_begun_may_be_rescheduled_but_not_one_under_way(data_dir, base_dir, tmp_path):
    quiet = dict(device="cpu", log=lambda line: None)
    long = config_for("adapter", base_dir, val_every=100, decay_start=3, decay_steps=3)
    short = config_for("adapter", base_dir, val_every=100, decay_start=2, decay_steps=2)
    straight = loop.train(short, data_dir, tmp_path / "straight", steps=4, **quiet)
    loop.train(long, data_dir, tmp_path / "run", steps=2, **quiet)             # its decay would start at 3
    rescheduled = loop.train(short, data_dir, tmp_path / "run", steps=4, resume=True, **quiet)
    assert rescheduled["val_psnr"] == straight["val_psnr"]
    assert load_checkpoint(tmp_path / "run" / "checkpoint").state["config"]["decay_start"] == 2
    loop.train(long, data_dir, tmp_path / "begun", steps=4, **quiet)            # step 4: its decay is under way
    resumed = loop.Trainer(short, data_dir, tmp_path / "begun", resume=True, **quiet)
    assert (resumed.config.decay_start, resumed.config.decay_steps) == (3, 3)   # kept, the new one ignored


def test_cli_decay_needs_steps(data_dir, tmp_path, capsys):
    assert main(["train", "base", "--data", str(data_dir), "--out", str(tmp_path / "d"), "--preset", "test",
                 "--device", "cpu", "--decay-steps", "5"]) == 2
    assert "--decay-steps N needs --steps S" in capsys.readouterr().err


def _moving_clip(shift: tuple[int, int], frames: int = 3, size: int = 32, seed: int = 0) -> torch.Tensor:
    """(1, 3, frames, size, size) in [-1, 1]: a smooth random texture moving by `shift` (dx, dy) px per frame."""
    rng = np.random.default_rng(seed)
    big = torch.from_numpy(rng.random((1, 3, 20, 20), dtype=np.float32))
    big = F.interpolate(big, size=(80, 80), mode="bicubic", align_corners=False)[0] * 2 - 1
    dx, dy = shift
    crops = [big[:, 16 - k * dy:16 - k * dy + size, 16 - k * dx:16 - k * dx + size] for k in range(frames)]
    return torch.stack(crops, dim=1)[None]


def test_temporal_term_ignores_error_that_moves_with_the_content_and_penalises_flicker():
    hr = _moving_clip((2, 1))
    grid, valid = temporal.window_flows(hr)
    assert grid.shape == (2, 32, 32, 2) and valid.shape == (1, 2, 1, 32, 32) and valid.mean() > 0.7
    moving = _moving_clip((2, 1), seed=1)          # an error pattern carried along by the same motion
    flicker = torch.randn(hr.shape, generator=torch.Generator().manual_seed(0))
    assert temporal.temporal_error(moving, grid, valid) < 0.02 * temporal.temporal_error(flicker, grid, valid)
    assert float(temporal.temporal_error(flicker, grid, valid)) == pytest.approx(2 * float(valid.mean()), rel=0.15)


def test_the_temporal_weight_adds_the_temporal_term_to_the_loss(data_dir, base_dir, tmp_path):
    config = config_for("adapter", base_dir, temporal_weight=2.0)
    trainer = loop.Trainer(config, data_dir, tmp_path / "run", resume=False, device="cpu", log=lambda line: None)
    perturb_(trainer.model.adapter, seed=3, std=0.05)  # a non-zero velocity, so the error varies over time
    degraded, t, noise = batch = next(loop._train_batches(config, data_dir, 0, trainer.accelerator))
    with torch.no_grad():
        plain = loop.flow_loss(trainer.trainee, batch, config.residual_std, trainer.autocast)
        with_term = loop.flow_loss(trainer.trainee, batch, config.residual_std, trainer.autocast, 2.0)
        z0, t_b = (degraded.hr - degraded.lr_up) / config.residual_std, t.view(-1, 1, 1, 1, 1)
        velocity = trainer.trainee(loop.add_noise(z0, noise, t_b), t, degraded)
        error = t_b * (velocity - loop.velocity_target(z0, noise))
        term = temporal.temporal_error(error, *temporal.window_flows(degraded.hr))
    assert term > 0 and float(with_term - plain) == pytest.approx(2.0 * float(term), rel=1e-4)


def test_a_fine_tune_starts_from_the_init_model(data_dir, base_dir, tmp_path):
    quiet = dict(device="cpu", log=lambda line: None)
    loop.train(config_for("adapter", base_dir, lr=3e-2), data_dir, tmp_path / "first", steps=2, **quiet)
    trained = PatchVSRModel.from_pretrained(tmp_path / "first" / "model")
    config = config_for("adapter", base_dir, model__init=str(tmp_path / "first" / "model"))
    model = loop.Trainer(config, data_dir, tmp_path / "fine", resume=False, **quiet).model
    expected = trained.state_dict()
    assert all(torch.equal(value, expected[name]) for name, value in model.state_dict().items())
    loop.train(config, data_dir, tmp_path / "fine", steps=1, **quiet)
    shutil.rmtree(tmp_path / "first")                   # a resumed fine-tune reads its checkpoint, not the init
    assert loop.train(config, data_dir, tmp_path / "fine", steps=2, resume=True, **quiet)["steps"] == 2
    other_base = tmp_path / "other_base"
    perturb_(VideoDiT.from_preset("test"), seed=5, std=0.05).save_pretrained(str(other_base))
    with pytest.raises(InputError, match="another base"):
        stages.build_model(config_for("adapter", other_base, model__init=str(tmp_path / "fine" / "model")).model, 0)
    with pytest.raises(ValueError, match="adapter stage only"):
        config_for("base", model__init=str(tmp_path / "fine" / "model"))


def test_a_run_carried_to_a_fresh_folder_continues_where_it_stopped(data_dir, base_dir, tmp_path, capsys):
    """--carry: the small state (float16 weights, bfloat16 moments, step) and the base continue the run on a
    machine that has neither the run folder nor the base; the result stays within float16 rounding of a
    straight run."""
    import shutil
    from safetensors import safe_open

    base = tmp_path / "base"
    shutil.copytree(base_dir, base)
    common = ["train", "adapter", "--data", str(data_dir), "--preset", "test", "--base", str(base),
              "--device", "cpu", "--workers", "0", "--precision", "fp32", "--val-every", "100"]
    assert main([*common, "--out", str(tmp_path / "straight"), "--steps", "4"]) == 0
    assert main([*common, "--out", str(tmp_path / "first"), "--steps", "2", "--carry", str(tmp_path / "carry")]) == 0
    with safe_open(str(tmp_path / "carry" / "trainable.safetensors"), "pt") as tensors:
        assert {tensors.get_tensor(key).dtype for key in tensors.keys()} == {torch.float16}
    assert (tmp_path / "carry" / "base" / "config.json").is_file()
    shutil.rmtree(tmp_path / "first")
    shutil.rmtree(base)                       # a fresh machine: neither the run nor its base
    assert main([*common, "--out", str(tmp_path / "second"), "--steps", "4", "--carry", str(tmp_path / "carry")]) == 0
    assert (base / "config.json").is_file()
    assert "continuing the run carried in" in capsys.readouterr().err
    straight, carried = (load_checkpoint(tmp_path / run / "checkpoint") for run in ("straight", "second"))
    assert carried.state["run"]["step"] == 4 and carried.state["run"]["samples"] == straight.state["run"]["samples"]
    assert json.loads((tmp_path / "carry" / "state.json").read_text())["run"]["step"] == 4
    for name, value in straight.model.items():
        torch.testing.assert_close(carried.model[name], value, rtol=1e-2, atol=1e-3)
    # continued from the rounded state, not trained again from step 0 (that would be bit-identical)
    assert any(not torch.equal(carried.model[name], value) for name, value in straight.model.items())

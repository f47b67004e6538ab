"""Training configuration: one frozen dataclass, stored in every checkpoint as plain JSON, and presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from patchvsr.models import DIT_PRESETS
from patchvsr.train.degrade import DegradeConfig
from patchvsr.train.samples import FlowDraw
from patchvsr.train.stages import ModelSpec

# Standard deviation of the residual HR - V_up in [-1, 1] units over the default training degradation
# (factor 2-4, half bicubic / half bilinear) on the prepared clips; z0 = residual / RESIDUAL_STD is unit-ish.
RESIDUAL_STD = 0.12
PRECISIONS = ("bf16", "fp32")

# Optimisation defaults per model preset (plain dicts; command-line options override them).
TRAIN_PRESETS: dict[str, dict] = {
    "test": dict(batch=2, lr=1e-3, warmup_steps=0, val_clips=2, val_every=50, log_every=1, ema=0.0),
    "tiny": dict(batch=8, lr=3e-4, warmup_steps=200, val_clips=32, val_every=250, log_every=10, ema=0.999),
    "lite": dict(batch=16, lr=6e-4, warmup_steps=100, val_clips=32, val_every=250, log_every=10, ema=0.999),
    "small": dict(batch=16, lr=2e-4, warmup_steps=500, val_clips=64, val_every=500, log_every=10, ema=0.999),
}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run's result (the run budget --minutes/--steps does not)."""

    model: ModelSpec
    degrade: DegradeConfig
    draw: FlowDraw
    batch: int = 8
    lr: float = 3e-4
    weight_decay: float = 0.0
    warmup_steps: int = 200
    decay_start: int | None = None  # step where the learning rate starts its linear decay to 0 (None: constant)
    decay_steps: int = 0
    grad_clip: float = 1.0
    temporal_weight: float = 0.0  # weight of the temporal-consistency loss term (train/temporal.py); 0: off
    ema: float = 0.999
    seed: int = 0
    precision: str = "bf16"
    residual_std: float = RESIDUAL_STD
    val_clips: int = 32
    val_every: int = 250
    log_every: int = 10
    checkpoint_minutes: float = 10.0
    workers: int = 1

    def __post_init__(self) -> None:
        for name in ("batch", "val_clips", "val_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "residual_std", "checkpoint_minutes"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema must lie in [0, 1), got {self.ema}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        no_decay = self.decay_start is None and self.decay_steps == 0
        if not no_decay and (self.decay_start is None or self.decay_start < 0 or self.decay_steps < 1):
            raise ValueError("decay_start and decay_steps go together: both set (>= 0, >= 1) or neither")
        if min(self.warmup_steps, self.workers, self.weight_decay, self.grad_clip, self.temporal_weight) < 0:
            raise ValueError("warmup_steps, workers, weight_decay, grad_clip and temporal_weight must be >= 0")

    @property
    def decay_end(self) -> int | None:
        """The step at which the learning rate reaches 0 (None without a decay)."""
        return None if self.decay_start is None else self.decay_start + self.decay_steps

    def lr_factor(self, step: int) -> float:
        """The learning-rate multiplier after `step` updates: linear warm-up, constant, then (optionally) a
        linear decay to 0 over [decay_start, decay_end] (warmup-stable-decay).

        Args:
            step (int): updates done, >= 0.

        Returns:
            float: in [0, 1].
        """
        factor = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        if self.decay_start is not None and step > self.decay_start:
            factor *= max(0.0, 1.0 - (step - self.decay_start) / self.decay_steps)
        return factor

    def to_json(self) -> dict:
        """The config as plain JSON values (inverse: `from_json`).

        Returns:
            dict: nested dicts of the dataclass fields.
        """
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "TrainConfig":
        """Inverse of `to_json` (JSON lists become the tuples the dataclasses expect).

        Args:
            data (dict): a `to_json` dict, e.g. a checkpoint's state["config"].

        Returns:
            TrainConfig: the config.
        """
        degrade = {k: tuple(v) if isinstance(v, list) else v for k, v in data["degrade"].items()}
        return cls(**{**data, "model": ModelSpec(**data["model"]), "degrade": DegradeConfig(**degrade),
                      "draw": FlowDraw(**data["draw"])})


def default_config(stage: str, preset: str = "tiny", **overrides) -> TrainConfig:
    """The config of a stage for a model preset, with the preset's optimisation defaults (`TRAIN_PRESETS`).

    Args:
        stage (str): one of `stages.STAGES`.
        preset (str, *optional*, defaults to "tiny"): a model preset.
        overrides: TrainConfig fields, or fields of its parts given as `model__x`, `degrade__x`, `draw__x`
            (None values are ignored).

    Returns:
        TrainConfig: the config.

    Raises:
        ValueError: for an unknown stage or preset or a value out of range.
    """
    overrides = {k: v for k, v in overrides.items() if v is not None}
    parts = {part: {k.split("__", 1)[1]: v for k, v in overrides.items() if k.startswith(part + "__")}
             for part in ("model", "degrade", "draw")}
    top = {k: v for k, v in overrides.items() if "__" not in k}
    model = ModelSpec(stage=stage, preset=preset, **parts["model"])
    base = DIT_PRESETS[preset]
    degrade = DegradeConfig(window=base["sample_size"], frames=base["num_frames"], full_frame=stage == "base",
                            **parts["degrade"])
    # stage 2 trains at t = 1 only (90% from z = 0, the fidelity mode): samples at t < 1 give the adapter 5-25x
    # larger gradients that swamp Adam, and with them the fidelity gain over bicubic stayed ~0 dB
    adapter_draw = {"t_one_share": 1.0, "zero_noise_share": 0.9}
    draw = FlowDraw(**{**({"t_one_share": 0.0} if stage == "base" else adapter_draw), **parts["draw"]})
    return TrainConfig(model=model, degrade=degrade, draw=draw, **{**TRAIN_PRESETS.get(preset, {}), **top})

"""The small state of a training run, for continuing it on another machine (`patchvsr train ... --carry DIR`).

A full checkpoint holds the frozen base in float32 and the optimizer in float32, too much to commit after every
piece of a long run. The carry folder holds what the next piece needs and nothing else:

    state.json              the checkpoint's state (config, step, samples, data position, scheduler, optimizer
                            groups): the run continues at the same sample position of the data stream
    trainable.safetensors   the parameters the optimizer updates, float16
    ema.safetensors         their exponential moving average, float16 (if the run has one)
    optimizer.safetensors   Adam's moments, bfloat16 (float16 underflows the second moment); step counts exact
    base/                   stage 2 only: the stage-1 model folder the run adapts (frozen), as written

`unpack` rebuilds a full checkpoint from it (the frozen weights from `base/`), so `--resume` works as usual. The
resumed run is not bit-identical to an uninterrupted one (the float16/bfloat16 rounding); a resume from a full
checkpoint still is.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from patchvsr.errors import InputError
from patchvsr.train import stages
from patchvsr.train.checkpoint import flatten_optimizer, load_checkpoint, save_checkpoint, unflatten_optimizer
from patchvsr.train.config import TrainConfig

WEIGHT_DTYPE = torch.float16
MOMENT_DTYPE = torch.bfloat16


def _cast(tensors: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Floating-point tensors with more than one element to `dtype`; scalars (step counts) stay exact."""
    return {key: value.to(dtype).contiguous() if value.is_floating_point() and value.numel() > 1 else value
            for key, value in tensors.items()}


def _restore(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key: value.float() if value.is_floating_point() else value for key, value in tensors.items()}


def has_carry(carry_dir: Path) -> bool:
    """Whether `carry_dir` holds a packed run.

    Args:
        carry_dir (Path): the carry folder (may be missing).

    Returns:
        bool: True if it holds a state.json.
    """
    return (Path(carry_dir) / "state.json").is_file()


def pack(checkpoint_dir: Path, carry_dir: Path) -> None:
    """Write the carry folder of a checkpoint (replacing an older one).

    Args:
        checkpoint_dir (Path): a folder written by `save_checkpoint`.
        carry_dir (Path): the carry folder to write (module docstring).

    Raises:
        InputError: if there is no readable checkpoint in `checkpoint_dir`, or no stage-1 base folder where its
            config names one.
    """
    checkpoint = load_checkpoint(checkpoint_dir)
    config = TrainConfig.from_json(checkpoint.state["config"])
    names = [name for name, _ in stages.trainable(stages.build_model(config.model, config.seed, load_init=False))]
    carry_dir = Path(carry_dir)
    tmp = carry_dir.with_name(carry_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(_cast({name: checkpoint.model[name] for name in names}, WEIGHT_DTYPE), tmp / "trainable.safetensors")
    if checkpoint.ema is not None:
        save_file(_cast(checkpoint.ema, WEIGHT_DTYPE), tmp / "ema.safetensors")
    tensors, meta = flatten_optimizer(checkpoint.optimizer)
    save_file(_cast(tensors, MOMENT_DTYPE), tmp / "optimizer.safetensors")
    (tmp / "state.json").write_text(json.dumps({**checkpoint.state, "optimizer": meta}, indent=1))
    if config.model.base is not None:
        shutil.copytree(config.model.base, tmp / "base")
    shutil.rmtree(carry_dir, ignore_errors=True)
    tmp.rename(carry_dir)


def unpack(carry_dir: Path, checkpoint_dir: Path) -> TrainConfig:
    """Rebuild a full checkpoint from a carry folder; restores the stage-1 base folder the run's config names if
    it is missing.

    Args:
        carry_dir (Path): a folder written by `pack`.
        checkpoint_dir (Path): where the checkpoint is written.

    Returns:
        TrainConfig: the run's config.

    Raises:
        InputError: if `carry_dir` holds no packed run, or one that does not match the model its config builds.
    """
    carry_dir = Path(carry_dir)
    if not has_carry(carry_dir):
        raise InputError(f"{carry_dir} holds no packed training run (state.json missing)")
    state = json.loads((carry_dir / "state.json").read_text())
    config = TrainConfig.from_json(state["config"])
    if config.model.base is not None and not (Path(config.model.base) / "config.json").is_file():
        shutil.copytree(carry_dir / "base", config.model.base)
    model = stages.build_model(config.model, config.seed, load_init=False)
    trainable = _restore(load_file(str(carry_dir / "trainable.safetensors")))
    full = {**model.state_dict(), **trainable}
    if set(trainable) != {name for name, _ in stages.trainable(model)}:
        raise InputError(f"{carry_dir} does not match the model its config builds")
    ema_path = carry_dir / "ema.safetensors"
    ema = _restore(load_file(str(ema_path))) if ema_path.is_file() else None
    meta = state.pop("optimizer")
    optimizer = unflatten_optimizer(_restore(load_file(str(carry_dir / "optimizer.safetensors"))), meta)
    save_checkpoint(checkpoint_dir, full, optimizer, ema, state)
    return config

"""Resumable training checkpoints without pickle: safetensors for every tensor, JSON for everything else.

A checkpoint folder holds
    model.safetensors      the training module's full state dict
    optimizer.safetensors  the optimizer's per-parameter tensors, keys "<param id>.<name>"
    ema.safetensors        exponential moving average of the trainable parameters (if used)
    state.json             training config, step, samples, elapsed time, optimizer param groups and non-tensor
                           state, LR-scheduler state: everything needed to continue exactly
It is written to a temporary sibling and swapped in with renames, so an interrupted save leaves the previous
checkpoint intact.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from patchvsr.errors import InputError


@dataclass(frozen=True)
class Checkpoint:
    """What `load_checkpoint` returns: tensors and the JSON state (see the module docstring)."""

    model: dict[str, torch.Tensor]
    optimizer: dict
    ema: dict[str, torch.Tensor] | None
    state: dict


def _contiguous(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key: value.detach().contiguous().cpu() for key, value in tensors.items()}


def flatten_optimizer(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split a torch optimizer state dict into its tensors and its JSON part.

    Args:
        state_dict (dict): `optimizer.state_dict()`.

    Returns:
        tuple[dict[str, torch.Tensor], dict]: (tensors keyed "<param id>.<name>", JSON part: {"param_groups",
        "scalars"}).
    """
    tensors, scalars = {}, {}
    for param_id, entries in state_dict["state"].items():
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{param_id}.{name}"] = value
            else:
                scalars[f"{param_id}.{name}"] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    """Inverse of `flatten_optimizer`: a state dict for `optimizer.load_state_dict`.

    Args:
        tensors (dict[str, torch.Tensor]): tensors keyed "<param id>.<name>".
        meta (dict): the JSON part, {"param_groups", "scalars"}.

    Returns:
        dict: {"state": {param id: {name: value}}, "param_groups": [...]}.
    """
    state: dict[int, dict] = {}
    for key, value in [*tensors.items(), *meta["scalars"].items()]:
        param_id, name = key.split(".", 1)
        state.setdefault(int(param_id), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(directory: Path, model: dict[str, torch.Tensor], optimizer: dict,
                    ema: dict[str, torch.Tensor] | None, state: dict) -> None:
    """Write a checkpoint folder atomically (see the module docstring).

    Args:
        directory (Path): the checkpoint folder (replaced).
        model (dict[str, torch.Tensor]): the training module's state dict.
        optimizer (dict): the optimizer's state dict.
        ema (dict[str, torch.Tensor], *optional*): EMA of the trainable parameters, by name.
        state (dict): JSON-serialisable run state (config, step, scheduler, ...).
    """
    directory = Path(directory)
    tmp, old = directory.with_name(directory.name + ".tmp"), directory.with_name(directory.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(_contiguous(model), tmp / "model.safetensors")
    optimizer_tensors, optimizer_meta = flatten_optimizer(optimizer)
    save_file(_contiguous(optimizer_tensors), tmp / "optimizer.safetensors")
    if ema is not None:
        save_file(_contiguous(ema), tmp / "ema.safetensors")
    (tmp / "state.json").write_text(json.dumps({**state, "optimizer": optimizer_meta}, indent=1))
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        directory.rename(old)
    tmp.rename(directory)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(directory: Path) -> Checkpoint:
    """Read a folder written by `save_checkpoint` (or its `.old` sibling, after a save interrupted between its
    renames).

    Args:
        directory (Path): the checkpoint folder.

    Returns:
        Checkpoint: tensors on the CPU, as saved, and the state without its "optimizer" entry.

    Raises:
        InputError: if the checkpoint is missing or damaged.
    """
    directory = Path(directory)
    if not (directory / "state.json").is_file():
        old = directory.with_name(directory.name + ".old")
        if (old / "state.json").is_file():  # interrupted between the two renames of a save
            directory = old
        else:
            raise InputError(f"no checkpoint in {directory} (state.json missing): nothing to resume")
    try:
        state = json.loads((directory / "state.json").read_text())
        model = load_file(str(directory / "model.safetensors"))
        optimizer = unflatten_optimizer(load_file(str(directory / "optimizer.safetensors")),
                                        state.pop("optimizer"))
    except (OSError, ValueError, KeyError) as err:
        raise InputError(f"checkpoint {directory} is damaged: {err}") from None
    ema_path = directory / "ema.safetensors"
    ema = load_file(str(ema_path)) if ema_path.is_file() else None
    return Checkpoint(model=model, optimizer=optimizer, ema=ema, state=state)

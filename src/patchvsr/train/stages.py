"""The two training stages: which network trains, what it sees, how it is exported.

Both stages learn the same rectified-flow target on the scaled residual z0 = (HR - V_up) / residual_std, with
V_up the clean bicubic upsampling of the LR input (`Degraded.lr_up`), all in [-1, 1] model units:
- stage 1 `base`: the base VideoDiT alone, unconditional (fixed prompt), on whole clips resized to its window
  (`DegradeConfig.full_frame`): a generative prior of HR detail over time;
- stage 2 `adapter`: PatchVSRModel (frozen base + patch/global adapter + LoRA + condition embedder) on windows
  cropped from larger canvases, conditioned on the noise-augmented window, G + position mask, scale, crop box
  and noise level.
At inference: HR = V_up + residual_std · z0_hat, with z0_hat from the sampler (one step from z = 0 at t = 1 is
the fidelity mode). `export` writes the shippable folder plus `training.json` carrying `residual_std`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from einops import repeat
from torch import nn

from patchvsr.errors import InputError
from patchvsr.models import PatchVSRConfig, PatchVSRModel, VideoDiT, WindowConditions
from patchvsr.models import lora
from patchvsr.models.dit import grow_head_state
from patchvsr.models.patchvsr import PRESETS
from patchvsr.train.degrade import Degraded

STAGES = ("base", "adapter")
ABLATIONS = ("use_global_branch", "use_lora", "use_position", "use_fixed_prompt")


@dataclass(frozen=True)
class ModelSpec:
    """Which network a stage builds: preset name, the stage-1 model folder (required by stage 2: a fresh
    base has a zero-initialised output head, which stays zero while frozen), optionally a trained stage-2
    model folder to start from (`init`, a fine-tune), ablation switches; `head_blocks` grows the base's output
    head to that many residual blocks (the new ones start as the identity: `VideoDiT.with_head_blocks`);
    `tail_channels` adds a full-resolution tail of that width after it (also the identity at first:
    `VideoDiT.with_tail`)."""

    stage: str
    preset: str = "tiny"
    base: str | None = None
    init: str | None = None
    head_blocks: int | None = None
    tail_channels: int | None = None
    use_global_branch: bool = True
    use_lora: bool = True
    use_position: bool = True
    use_fixed_prompt: bool = True

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {self.preset!r}")
        if self.stage == "base" and self.base is not None:
            raise ValueError("a base folder only applies to the adapter stage")
        if self.stage == "adapter" and self.base is None:
            raise ValueError("the adapter stage needs the stage-1 model folder (--base RUN/model)")
        if self.stage == "base" and self.init is not None:
            raise ValueError("--init (start from a trained model) applies to the adapter stage only")
        if self.head_blocks is not None and (self.stage == "base" or self.head_blocks < 0):
            raise ValueError("--head-blocks (grow the output head) applies to the adapter stage, and is >= 0")
        if self.tail_channels is not None and (self.stage == "base" or self.tail_channels < 1):
            raise ValueError("--tail-channels (add a full-resolution tail) applies to the adapter stage, and is >= 1")


def build_model(spec: ModelSpec, seed: int, load_init: bool = True) -> nn.Module:
    """A freshly initialised training module; weights from seed, then from the `init` folder if the spec names
    one and `load_init` (a resumed run takes its weights from the checkpoint instead, so the folder need not
    exist any more).

    Args:
        spec (ModelSpec): which network.
        seed (int): the initialisation seed.
        load_init (bool, *optional*, defaults to True): load the `init` folder's weights.

    Returns:
        nn.Module: a VideoDiT (base stage) or PatchVSRModel (adapter stage).

    Raises:
        InputError: for a missing stage-1 folder, a `head_blocks` the preset or base does not allow, or an
            `init` folder that does not fit.
    """
    if spec.stage == "base":
        return VideoDiT.from_preset(spec.preset, seed=seed)
    ablations = {name: getattr(spec, name) for name in ABLATIONS}
    config = PatchVSRConfig(**{**PRESETS[spec.preset]["adapter"], **ablations})
    if not (Path(spec.base) / "config.json").is_file():
        raise InputError(f"{spec.base} is not a stage-1 model folder (no config.json): train the base first")
    base = VideoDiT.from_pretrained(spec.base)
    for flag, value, grow, offset in (("--head-blocks", spec.head_blocks, VideoDiT.with_head_blocks, 2),
                                      ("--tail-channels", spec.tail_channels, VideoDiT.with_tail, 3)):
        if value is None:
            continue
        if not config.train_head:
            raise InputError(f"{flag}: preset {spec.preset!r} does not train the head in stage 2")
        try:
            base = grow(base, value, seed=seed + offset)
        except ValueError as err:
            raise InputError(f"{flag} {value}: {err}") from None
    model = PatchVSRModel.from_base(base, config, seed=seed + 1)
    if spec.init is not None and load_init:
        _load_init(model, Path(spec.init))
    return model


def _load_init(model: PatchVSRModel, folder: Path) -> None:
    """Start `model` from the weights of a trained stage-2 folder of the same configuration and base, whose
    head may have fewer residual blocks than this run's and no full-resolution tail where this run has one (the
    run grows them; a degradation estimator of an older design in the folder is left out: this run trains its
    own)."""
    trained = PatchVSRModel.from_pretrained(folder, fresh_estimator=True)
    if trained.config != model.config or trained.lora_merged:
        raise InputError(f"{folder} is a model of another configuration than this run's (or has merged LoRA)")
    ours, theirs = lora.base_state_dict(model.base), lora.base_state_dict(trained.base)
    trained_head = model.config.train_head  # the head trained in stage 2 differs from the base's on purpose
    if any(not torch.equal(value, theirs[name]) for name, value in ours.items()
           if not (trained_head and name.startswith(("head.", "tail.")))):
        raise InputError(f"{folder} was trained on another base than this run's --base")
    old, new = trained.base.config.head_blocks, model.base.config.head_blocks
    if old > new:
        raise InputError(f"{folder} has {old} head blocks, more than this run's {new}")
    fresh = model.state_dict()
    state = grow_head_state(trained.state_dict(), "base.head.", old, new, fresh)
    tail, ours_tail = trained.base.config.tail_channels, model.base.config.tail_channels
    if tail and tail != ours_tail:
        raise InputError(f"{folder} has a tail of {tail} channels, this run {ours_tail or 'none'}")
    if ours_tail and not tail:   # the tail and its hint start as initialised
        state |= {name: value for name, value in fresh.items()
                  if name.startswith(("base.tail.", "adapter.tail_proj."))}
    model.load_state_dict(state)


def window_geometry(model: nn.Module) -> tuple[int, int]:
    """The window side and clip length the module is trained on: its base's native sample size and length.

    Args:
        model (nn.Module): a VideoDiT or PatchVSRModel.

    Returns:
        tuple[int, int]: (window side px, clip frames).
    """
    base = model.base if isinstance(model, PatchVSRModel) else model
    return base.config.sample_size, base.config.num_frames


def trainable(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The parameters that the optimizer updates (the whole base in stage 1; new parts in stage 2).

    Args:
        model (nn.Module): the training module.

    Returns:
        list[tuple[str, nn.Parameter]]: (name, parameter) pairs, in `named_parameters` order.
    """
    return [(name, p) for name, p in model.named_parameters() if p.requires_grad]


def conditions(batch: Degraded) -> WindowConditions:
    """Stage-2 window conditions from a degraded batch (global input = G + position mask on every frame).

    Args:
        batch (Degraded): B samples; `cond` becomes the conditions' lr_up.

    Returns:
        WindowConditions: B rows, global_input (B, 4, T, gs, gs), no cache keys.
    """
    frames = batch.global_frame.shape[2]
    mask = repeat(batch.position_mask, "b one h w -> b one t h w", t=frames)
    return WindowConditions(lr_up=batch.cond, global_input=torch.cat([batch.global_frame, mask], dim=1),
                            scale=batch.scale, crop_box=batch.crop_box, noise_level=batch.noise_level,
                            degradation=batch.degradation)


class Trainee(nn.Module):
    """What accelerate wraps (and DistributedDataParallel, on several devices): `forward` is the velocity of
    either stage, so gradient synchronisation hooks see every call."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    @property
    def estimates_degradation(self) -> bool:
        """Whether the model has a degradation estimator (trained beside the velocity, see `forward`)."""
        return isinstance(self.model, PatchVSRModel) and self.model.embedder.estimator is not None

    def forward(self, z: torch.Tensor, t: torch.Tensor, batch: Degraded, estimate: bool = False) -> torch.Tensor:
        """The velocity of either stage, or (estimate=True) the degradation estimator's output instead.

        The estimate reads the clean-augmentation LR window (`batch.lr_up`, corrupted but without the noise
        augmentation), which it is trained to match with `batch.degradation`; the velocity always conditions on
        the true strength (teacher forcing).

        Args:
            z (torch.Tensor): (B, 3, T, h, w) noisy scaled residual z_t.
            t (torch.Tensor): (B,) in [0, 1].
            batch (Degraded): the batch's conditions (stage 2 and the estimate only).
            estimate (bool, *optional*, defaults to False): return the estimate instead of the velocity.

        Returns:
            torch.Tensor: v, z's shape; with `estimate`, (B,) float32 in [0, 1].
        """
        if estimate:
            return self.model.embedder.estimator(batch.lr_up, batch.scale)
        if isinstance(self.model, PatchVSRModel):
            return self.model.velocity(z, t, conditions(batch))
        return self.model(z, t)


def export(model: nn.Module, directory: Path, training: dict, card: str) -> None:
    """Write the shippable model folder (diffusers layout, safetensors, model_card.md) + training.json.

    Args:
        model (nn.Module): a VideoDiT or PatchVSRModel.
        directory (Path): the folder; created if missing.
        training (dict): JSON-serialisable training facts (residual_std, steps, validation, config).
        card (str): markdown for the model card's training section.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if isinstance(model, PatchVSRModel):
        model.save_pretrained(directory, card=card)
    else:
        model.save_pretrained(str(directory), safe_serialization=True)
        (directory / "model_card.md").write_text("# PatchVSR base (stage 1)\n\n" + card.strip() + "\n")
    (directory / "training.json").write_text(json.dumps(training, indent=1) + "\n")

"""`PatchVSRModel`: base VideoDiT + dual-branch adapter + LoRA + condition embedder behind one call,
`velocity(z, t, cond) -> v`, the callable the tiling engine drives for every batch of windows.

Saved as one folder in diffusers' layout (never pickle):

    config.json                                 PatchVSRModel: adapter config, LoRA state (format_version 2)
    patchvsr_adapter.safetensors                the new parts: `adapter.*`, `embedder.*`
    base/config.json                            the base VideoDiT, a diffusers model folder of its own:
    base/diffusion_pytorch_model.safetensors        `VideoDiT.from_pretrained(folder, subfolder="base")`
    base/pytorch_lora_weights.safetensors       its LoRA (peft, the file `save_lora_adapter` writes;
                                                    `load_lora_adapter(path, prefix=None)`), unless the model
                                                    has none or merged it
    model_card.md

Folders of the first format (format_version 1: one safetensors file per part, `base`, `adapter`, `embedder`,
`lora`, next to config.json) still load.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import diffusers
import torch
from diffusers import ModelMixin
from safetensors.torch import load_file, save_file
from torch import nn

from patchvsr.errors import OptionError
from patchvsr.models import lora
from patchvsr.models.adapter import BranchCache, BranchFeatures, PatchVSRAdapter
from patchvsr.models.conditions import ConditionEmbedder, WindowConditions
from patchvsr.models.dit import DIT_PRESETS, VideoDiT
from patchvsr.models.layers import cast_model

FORMAT_VERSION = 2
FORMAT_VERSIONS = (1, 2)                         # what from_pretrained reads
WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
# not WEIGHTS_NAME: diffusers' from_pretrained(folder, subfolder="base") takes a top-level file of that name first
ADAPTER_WEIGHTS_NAME = "patchvsr_adapter.safetensors"
LORA_WEIGHTS_NAME = "pytorch_lora_weights.safetensors"
BASE_FOLDER = "base"
V1_PARTS = ("base", "adapter", "embedder", "lora")


@dataclasses.dataclass(frozen=True)
class PatchVSRConfig:
    """Adapter configuration. The four `use_*` flags are the paper's ablations; each removes one thing only:
    use_global_branch=False: no global branch and no K_g/V_g (global_input is ignored);
    use_lora=False: the base stays exactly as pretrained;
    use_position=False: the crop box and the position mask M_i no longer reach the model (scale and noise do);
    use_fixed_prompt=False: the text cross-attention reads a null prompt (one all-zero token) instead of the
        learned fixed prompt, as a text-to-video model given an empty caption.
    use_degradation=True adds a condition: the degradation strength of the LR input (given, or estimated from
        each window by the embedder's `DegradationEstimator`), for models trained on real-world degradations;
    train_head=True also trains the base's convolutional output head (its decoder from tokens to pixels) in
        stage 2: with the stem and head on the LR grid (`stem_stride` > 1) most of the network's pixel work is
        there, and LoRA adapts only the transformer's linear layers (the base's full-resolution tail, where it
        has one, trains with the head).
    """

    patch_depth: int = 2
    global_depth: int = 2
    lora_rank: int = 8
    lora_alpha: float = 8.0
    cond_freq_dim: int = 64
    use_global_branch: bool = True
    use_lora: bool = True
    use_position: bool = True
    use_fixed_prompt: bool = True
    use_degradation: bool = False
    train_head: bool = False

    def __post_init__(self):
        for name in ("patch_depth", "global_depth", "lora_rank", "cond_freq_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.cond_freq_dim % 2:
            raise ValueError(f"cond_freq_dim must be even, got {self.cond_freq_dim}")
        if not self.lora_alpha > 0:
            raise ValueError(f"lora_alpha must be positive, got {self.lora_alpha!r}")
        for name in ("use_global_branch", "use_lora", "use_position", "use_fixed_prompt", "use_degradation",
                     "train_head"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")


# Whole-model presets: base VideoDiT arguments + PatchVSRConfig fields.
PRESETS: dict[str, dict[str, dict]] = {
    "test": {"base": DIT_PRESETS["test"], "adapter": dict(patch_depth=1, global_depth=1, lora_rank=2,
                                                           lora_alpha=2.0, cond_freq_dim=16)},
    "tiny": {"base": DIT_PRESETS["tiny"], "adapter": dict(patch_depth=2, global_depth=2, lora_rank=8)},
    "lite": {"base": DIT_PRESETS["lite"], "adapter": dict(patch_depth=2, global_depth=2, lora_rank=8,
                                                           use_degradation=True, train_head=True)},
    "small": {"base": DIT_PRESETS["small"], "adapter": dict(patch_depth=4, global_depth=2, lora_rank=16,
                                                             lora_alpha=16.0)},
}


class PatchVSRModel(ModelMixin):
    """The adapted model. Build with `from_preset`, `from_base` (stage 2 from a trained base) or
    `from_pretrained`; train `trainable_parameters()`; call `velocity`.

    A diffusers `ModelMixin` (device, dtype, offloading hooks), so a `DiffusionPipeline` can hold and load it
    (`patchvsr.pipeline.PatchVSRPipeline`). Its folder (module docstring) holds the base as a diffusers model
    folder with a peft LoRA file; `from_pretrained` / `save_pretrained` are its own because the model is built
    from that base (it is not a ConfigMixin whose constructor takes only JSON values).
    """

    def __init__(self, base: VideoDiT, config: PatchVSRConfig, lora_merged: bool = False):
        super().__init__()
        base.requires_grad_(False)
        self.config = config
        self.adapter = PatchVSRAdapter(base, config.patch_depth, config.global_depth, config.use_global_branch,
                                       config.use_position)
        self.embedder = ConditionEmbedder(base.config.hidden_size, config.cond_freq_dim, config.use_position,
                                          config.use_degradation, base.config.in_channels)
        if config.use_lora and not lora_merged:
            lora.add_lora(base, config.lora_rank, config.lora_alpha)
        base.head.requires_grad_(config.train_head)
        if base.tail is not None:
            base.tail.requires_grad_(config.train_head)
        self.base = base
        self.lora_merged = lora_merged
        self.cache = BranchCache()

    # ----- construction -------------------------------------------------------------------------------------
    @classmethod
    def from_base(cls, base: VideoDiT | str | Path, config: PatchVSRConfig | None = None,
                  seed: int = 0) -> "PatchVSRModel":
        """Stage 2: wrap a trained base. The new weights depend only on `seed`.

        Args:
            base (VideoDiT or str or Path): a VideoDiT, used in place (frozen and given LoRA layers), or its
                `save_pretrained` folder.
            config (PatchVSRConfig, *optional*): the adapter configuration (default `PatchVSRConfig()`).
            seed (int, *optional*, defaults to 0): initialisation seed of the new weights.

        Returns:
            PatchVSRModel: the model.
        """
        if not isinstance(base, VideoDiT):
            base = VideoDiT.from_pretrained(str(base))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return cls(base, config or PatchVSRConfig())

    @classmethod
    def from_preset(cls, name: str, seed: int = 0, **overrides) -> "PatchVSRModel":
        """A randomly initialised model of a preset. Weights depend only on `seed`.

        Args:
            name (str): a key of PRESETS ("test", "tiny", "lite", "small").
            seed (int, *optional*, defaults to 0): the base's seed (the new weights use seed + 1).
            overrides: PatchVSRConfig fields replacing the preset's (e.g. use_lora=False).

        Returns:
            PatchVSRModel: the model, float32.

        Raises:
            ValueError: for an unknown preset or a bad override.
        """
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        base = VideoDiT.from_preset(name, seed=seed)
        return cls.from_base(base, PatchVSRConfig(**{**PRESETS[name]["adapter"], **overrides}), seed=seed + 1)

    # ----- inference ----------------------------------------------------------------------------------------
    @property
    def window_size(self) -> int:
        """The base's native window side in pixels (what it was trained on)."""
        return self.base.config.sample_size

    @property
    def clip_frames(self) -> int:
        """The base's native clip length in frames."""
        return self.base.config.num_frames

    @property
    def token_patch(self) -> tuple[int, int]:
        """(frames, pixels): a window's T must be a multiple of the first, its h and w of the second, and the
        global input's gh and gw of twice the second."""
        return self.base.config.patch_size_t, self.base.config.patch_size

    def branch_features(self, cond: WindowConditions) -> BranchFeatures:
        """Patch/global branch outputs of the windows in `cond`; from the cache when `cond.keys` is given.

        Args:
            cond (WindowConditions): the N windows' conditions.

        Returns:
            BranchFeatures: patch_states `patch_depth` x (N, L, D); global_tokens (N, Lg, D) or None.

        Raises:
            ValueError: for cache keys while autograd is enabled (the cache is for inference).
        """
        if cond.keys is None:
            return self.adapter.branch_features(cond.lr_up, cond.global_input)
        if torch.is_grad_enabled():
            raise ValueError("cached branch features are for inference: wrap the call in torch.no_grad() "
                             "or pass WindowConditions(keys=None)")

        def compute(rows: list[int]) -> BranchFeatures:
            subset = cond.select(rows)
            return self.adapter.branch_features(subset.lr_up, subset.global_input)

        return self.cache.fetch(cond.keys, compute)

    def velocity(self, z: torch.Tensor, t: torch.Tensor | float, cond: WindowConditions) -> torch.Tensor:
        """The velocity v of noisy windows z_t.

        Any h, w that are multiples of the token patch work, including one window covering a whole frame
        (`full_frame_conditions`). Same as calling the module, which goes through `forward` so wrappers (DDP,
        accelerate) see the call.

        Args:
            z (torch.Tensor): (N, C, T, h, w) noisy windows z_t, of cond.lr_up's shape.
            t (torch.Tensor or float): (N,) or a scalar, in [0, 1].
            cond (WindowConditions): the windows' conditions.

        Returns:
            torch.Tensor: v, (N, C, T, h, w) in z's dtype.

        Raises:
            ValueError: if `cond.lr_up` and z differ in shape, or a condition does not fit the model.
        """
        return self(z, t, cond)

    def forward(self, z: torch.Tensor, t: torch.Tensor | float, cond: WindowConditions) -> torch.Tensor:
        """See `velocity`.

        Args:
            z (torch.Tensor): (N, C, T, h, w) noisy windows z_t.
            t (torch.Tensor or float): (N,) or a scalar, in [0, 1].
            cond (WindowConditions): the windows' conditions.

        Returns:
            torch.Tensor: v, (N, C, T, h, w) in z's dtype.

        Raises:
            ValueError: if `cond.lr_up` and z differ in shape, or a condition does not fit the model.
        """
        if cond.lr_up.shape != z.shape:
            raise ValueError(f"cond.lr_up has shape {tuple(cond.lr_up.shape)}, z has {tuple(z.shape)}")
        t = torch.as_tensor(t, dtype=z.dtype, device=z.device).reshape(-1).expand(z.shape[0])
        features = self.branch_features(cond)
        cond_emb = self.embedder(cond.scale, cond.crop_box, cond.noise_level, self.degradation(cond))
        injection = self.adapter.injection(features, cond.lr_up, cond_emb)
        return self.base(z, t, injection=injection, use_prompt=self.config.use_fixed_prompt)

    def degradation(self, cond: WindowConditions) -> torch.Tensor | None:
        """The degradation strength the model conditions on: `cond.degradation`, else the estimate from each window.

        Args:
            cond (WindowConditions): the N windows' conditions.

        Returns:
            torch.Tensor or None: (N,) in [0, 1]; None for a model without that condition.
        """
        estimator = self.embedder.estimator
        if estimator is None or cond.degradation is not None:
            return None if estimator is None else cond.degradation
        return estimator(cond.lr_up, cond.scale)

    # ----- training and LoRA --------------------------------------------------------------------------------
    def trainable_parameters(self) -> list[nn.Parameter]:
        """Adapter + embedder + LoRA parameters (+ the base's output head with `train_head`; the rest of the base
        stays frozen).

        Returns:
            list[nn.Parameter]: the parameters that require grad.
        """
        return [parameter for parameter in self.parameters() if parameter.requires_grad]

    def merge_lora(self) -> None:
        """Fold the LoRA weights into the base for inference (no-op without LoRA or if already merged)."""
        if lora.merge_lora(self.base):
            self.lora_merged = True

    def parameter_counts(self) -> dict[str, int]:
        """Number of parameters per saved part: base (without LoRA), adapter, embedder, lora.

        Returns:
            dict[str, int]: part name -> parameter count.
        """
        return {name: sum(t.numel() for t in state.values()) for name, state in self.part_state_dicts().items()}

    # ----- saving and loading -------------------------------------------------------------------------------
    def part_state_dicts(self) -> dict[str, dict[str, torch.Tensor]]:
        """One state dict per part; `lora` is absent without LoRA layers (none, or merged).

        Returns:
            dict[str, dict[str, torch.Tensor]]: part name (base, adapter, embedder, lora) -> its state dict.
        """
        parts = {
            "base": lora.base_state_dict(self.base),
            "adapter": self.adapter.state_dict(),
            "embedder": self.embedder.state_dict(),
        }
        if lora.has_lora(self.base):
            parts["lora"] = lora.lora_state_dict(self.base)
        return parts

    def save_pretrained(self, directory: str | Path, card: str = "", dtype: torch.dtype | None = None) -> None:
        """Write the model folder (module docstring) and model_card.md (with `card` appended).

        Args:
            directory (str or Path): the folder; created if missing. Files of the first format in it are removed.
            card (str, *optional*, defaults to ""): markdown appended to the generated model card (training,
                evaluation).
            dtype (torch.dtype, *optional*): store floating-point weights in this dtype (torch.float16 halves the
                size); loading casts them back to the model's dtype.
        """
        directory = Path(directory)
        base_dir = directory / BASE_FOLDER
        base_dir.mkdir(parents=True, exist_ok=True)
        for stale in [*(directory / f"{part}.safetensors" for part in V1_PARTS), base_dir / LORA_WEIGHTS_NAME]:
            stale.unlink(missing_ok=True)
        parts = self.part_state_dicts()
        self.base.save_config(str(base_dir))
        _save(parts["base"], base_dir / WEIGHTS_NAME, dtype)
        if "lora" in parts:  # the file diffusers' `save_lora_adapter` writes, in `dtype`
            _save(parts["lora"], base_dir / LORA_WEIGHTS_NAME, dtype, lora.lora_file_metadata(self.base))
        _save({**_prefixed(parts["adapter"], "adapter."), **_prefixed(parts["embedder"], "embedder.")},
              directory / ADAPTER_WEIGHTS_NAME, dtype)
        config = {
            "_class_name": type(self).__name__,
            "_diffusers_version": diffusers.__version__,
            "format_version": FORMAT_VERSION,
            "adapter": dataclasses.asdict(self.config),
            "lora_merged": self.lora_merged,
        }
        (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        (directory / "model_card.md").write_text(model_card(self, card))

    @classmethod
    def from_pretrained(cls, directory: str | Path, fresh_estimator: bool = False,
                        torch_dtype: torch.dtype | None = None, **_loading_options) -> "PatchVSRModel":
        """Load a folder written by `save_pretrained` (either format).

        Args:
            directory (str or Path): the model folder.
            fresh_estimator (bool, *optional*, defaults to False): where the folder's degradation estimator is of
                an older design (other tensors), keep a freshly initialised one instead of failing (to fine-tune
                such a model).
            torch_dtype (torch.dtype, *optional*): cast the weights (as `DiffusionPipeline.from_pretrained` asks);
                the other loading options diffusers passes (variants, device maps, ...) are ignored.

        Returns:
            PatchVSRModel: in eval mode, float32 unless `torch_dtype` says otherwise.

        Raises:
            OptionError: naming the problem, if the folder is not a PatchVSRModel folder or lacks a file.
        """
        directory = Path(directory)
        config = read_config(directory)
        if config["format_version"] == 1:
            base_config, parts = config["base"], {part: directory / f"{part}.safetensors" for part in V1_PARTS}
        else:
            if not (directory / BASE_FOLDER / "config.json").is_file():
                raise OptionError(f"model folder {directory} has no {BASE_FOLDER}/config.json")
            base_config = VideoDiT.load_config(str(directory / BASE_FOLDER))
            parts = {"base": directory / BASE_FOLDER / WEIGHTS_NAME, "new": directory / ADAPTER_WEIGHTS_NAME,
                     "lora": directory / BASE_FOLDER / LORA_WEIGHTS_NAME}
        base = VideoDiT.from_config(base_config)
        base.load_state_dict(load_part(parts["base"]))
        model = cls(base, PatchVSRConfig(**config["adapter"]), lora_merged=config["lora_merged"])
        if config["format_version"] == 1:
            adapter, embedder = load_part(parts["adapter"]), load_part(parts["embedder"])
        else:
            new = load_part(parts["new"])
            adapter, embedder = _part(new, "adapter."), _part(new, "embedder.")
        model.adapter.load_state_dict(adapter)
        if model.embedder.estimator is not None and not _same_shapes(
                model.embedder.estimator.state_dict(), _part(embedder, "estimator.")):
            if not fresh_estimator:
                raise OptionError(f"model folder {directory} has a degradation estimator of an older design")
            embedder = {**{k: v for k, v in embedder.items() if not k.startswith("estimator.")},
                        **{f"estimator.{k}": v for k, v in model.embedder.estimator.state_dict().items()}}
        model.embedder.load_state_dict(embedder)
        if lora.has_lora(model.base):
            lora.load_lora_state_dict(model.base, load_part(parts["lora"]))
        return (model if torch_dtype is None else cast_model(model, torch_dtype)).eval()


def _save(state: dict[str, torch.Tensor], path: Path, dtype: torch.dtype | None,
          metadata: dict[str, str] | None = None) -> None:
    """safetensors file of `state`, floating-point tensors cast to `dtype` (None: as they are)."""
    tensors = {key: (value.detach().to(dtype) if dtype is not None and value.is_floating_point() else value.detach())
               .contiguous().cpu() for key, value in state.items()}
    save_file(tensors, path, metadata={"format": "pt", **(metadata or {})})


def _prefixed(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + key: value for key, value in state.items()}


def _part(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}


def _same_shapes(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor]) -> bool:
    return ours.keys() == theirs.keys() and all(ours[key].shape == theirs[key].shape for key in ours)


def read_config(directory: Path) -> dict:
    """The parsed config.json of a PatchVSRModel folder.

    Args:
        directory (Path): the model folder.

    Returns:
        dict: the config (`_class_name`, `format_version`, `adapter`, `lora_merged`, ...).

    Raises:
        OptionError: if config.json is missing, unreadable or of another kind or format.
    """
    path = directory / "config.json"
    if not path.is_file():
        raise OptionError(f"model folder {directory} has no config.json")
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise OptionError(f"cannot read {path}: {error}") from None
    if config.get("_class_name") != PatchVSRModel.__name__ or config.get("format_version") not in FORMAT_VERSIONS:
        raise OptionError(f"{path} is not a PatchVSRModel config (formats {', '.join(map(str, FORMAT_VERSIONS))})")
    return config


def load_part(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of one saved file of a model folder.

    Args:
        path (Path): a safetensors file in the folder (or in its base/).

    Returns:
        dict[str, torch.Tensor]: the file's tensors, on the CPU.

    Raises:
        OptionError: if the file is missing.
    """
    if not path.is_file():
        folder = path.parent.parent if path.parent.name == BASE_FOLDER else path.parent
        raise OptionError(f"model folder {folder} has no {path.relative_to(folder)}")
    return load_file(str(path))


def model_card(model: PatchVSRModel, extra: str = "") -> str:
    """Markdown model card: architecture, parameter counts, ablation flags, then `extra` (training, metrics).

    Args:
        model (PatchVSRModel): the model described.
        extra (str, *optional*, defaults to ""): markdown appended.

    Returns:
        str: the card, ending in a newline.
    """
    spec, counts = model.base.config, model.parameter_counts()
    lines = [
        "# PatchVSR model", "",
        "Patch-wise video super-resolution (PatchVSR, CVPR 2025): a video DiT base with a dual-branch adapter "
        "(patch branch + global branch), LoRA and condition embeddings. Load with "
        "`patchvsr.models.PatchVSRModel.from_pretrained(folder)`.", "",
        "## Architecture", "",
        f"- base: {spec.depth} blocks, width {spec.hidden_size}, {spec.num_heads} heads, token patch "
        f"{spec.patch_size_t}x{spec.patch_size}x{spec.patch_size}, {spec.in_channels} input channels, native "
        f"window {spec.num_frames} frames x {spec.sample_size}px",
        f"- adapter: {model.config}",
        f"- LoRA merged into the base: {model.lora_merged}",
        "- parameters: " + ", ".join(f"{name} {count:,}" for name, count in counts.items())
        + f" (total {sum(counts.values()):,})",
        "",
    ]
    return "\n".join(lines) + (extra.strip() + "\n" if extra.strip() else "")

"""LoRA on the base DiT's attention and MLP projections, through `peft`, mergeable for inference.

The adapter is injected in place into a `VideoDiT` (diffusers' `PeftAdapterMixin.add_adapter`), which also
freezes every non-LoRA parameter of the base. The projections adapted are the self-attention Q/K/V/out, the text
cross-attention's Q/out (its K/V only ever see the fixed prompt) and the MLP's two layers of every base block,
plus the token embedding and the final projection back to full-resolution features: windows of an upsampled LR
video differ from the base's training frames in exactly those pixel statistics.
"""

from __future__ import annotations

import json

import torch
from diffusers.loaders.lora_base import LORA_ADAPTER_METADATA_KEY
from peft import LoraConfig, get_peft_model_state_dict, set_peft_model_state_dict
from peft.tuners.tuners_utils import BaseTunerLayer

from patchvsr.models.dit import VideoDiT

ADAPTER_NAME = "patchvsr"
TARGET_MODULES = (r"blocks\.\d+\.(attn1\.(to_q|to_k|to_v|to_out)|attn2\.(to_q|to_out)|mlp\.(fc1|fc2))"
                  r"|patch_embed|final_proj")


def lora_config(rank: int, alpha: float) -> LoraConfig:
    """The peft config used for every PatchVSR LoRA (B starts at zero, so the adapted base equals the base).

    Args:
        rank (int): the LoRA rank r, >= 1.
        alpha (float): the LoRA alpha, > 0 (the update is scaled by alpha / r).

    Returns:
        LoraConfig: targeting `TARGET_MODULES`.
    """
    return LoraConfig(r=rank, lora_alpha=alpha, target_modules=TARGET_MODULES, init_lora_weights=True)


def add_lora(base: VideoDiT, rank: int, alpha: float) -> None:
    """Inject LoRA layers into `base` in place; afterwards only the LoRA parameters of `base` train.

    Args:
        base (VideoDiT): the base, changed in place.
        rank (int): the LoRA rank r, >= 1.
        alpha (float): the LoRA alpha, > 0.
    """
    base.add_adapter(lora_config(rank, alpha), adapter_name=ADAPTER_NAME)


def has_lora(base: VideoDiT) -> bool:
    """Whether `base` holds (unmerged) peft LoRA layers.

    Args:
        base (VideoDiT): the base.

    Returns:
        bool: True if it holds LoRA layers.
    """
    return any(isinstance(module, BaseTunerLayer) for module in base.modules())


def merge_lora(base: VideoDiT) -> bool:
    """Fold W + (alpha / r)·B·A into every adapted weight, remove the LoRA layers (plain nn.Linear again) and
    freeze the base.

    Args:
        base (VideoDiT): the base, changed in place.

    Returns:
        bool: True if it merged; False, doing nothing, if `base` holds no LoRA (none, or already merged).
    """
    if not has_lora(base):
        return False
    base.fuse_lora()
    base.unload_lora()
    base.requires_grad_(False)
    return True


def lora_state_dict(base: VideoDiT) -> dict[str, torch.Tensor]:
    """The LoRA weights only, with peft's adapter-name-free keys (`blocks.0.attn1.to_q.lora_A.weight`).

    Args:
        base (VideoDiT): a base holding LoRA layers.

    Returns:
        dict[str, torch.Tensor]: key -> weight, A (r, in_features) and B (out_features, r) per adapted layer.
    """
    return get_peft_model_state_dict(base, adapter_name=ADAPTER_NAME)


def lora_file_metadata(base: VideoDiT) -> dict[str, str]:
    """The safetensors metadata diffusers' `save_lora_adapter` writes beside the weights: the peft config, from
    which `load_lora_adapter` rebuilds the LoRA layers.

    Args:
        base (VideoDiT): a base holding LoRA layers.

    Returns:
        dict[str, str]: {LORA_ADAPTER_METADATA_KEY: the config as JSON} (sets as sorted lists).
    """
    config = {key: sorted(value) if isinstance(value, set) else value
              for key, value in base.peft_config[ADAPTER_NAME].to_dict().items()}
    return {LORA_ADAPTER_METADATA_KEY: json.dumps(config, indent=2, sort_keys=True)}


def load_lora_state_dict(base: VideoDiT, state: dict[str, torch.Tensor]) -> None:
    """Load weights saved by `lora_state_dict` into a base that already holds LoRA layers.

    Args:
        base (VideoDiT): the base, changed in place.
        state (dict[str, torch.Tensor]): the LoRA weights, keys as `lora_state_dict` writes them.

    Raises:
        ValueError: if the keys do not match the base's LoRA layers.
    """
    result = set_peft_model_state_dict(base, state, adapter_name=ADAPTER_NAME)
    missing = [key for key in result.missing_keys if "lora_" in key]
    if missing or result.unexpected_keys:
        raise ValueError(f"LoRA weights do not match the model: missing {missing[:3]}, "
                         f"unexpected {list(result.unexpected_keys)[:3]}")


def base_state_dict(base: VideoDiT) -> dict[str, torch.Tensor]:
    """The base's own weights under their original names, whether or not LoRA layers are injected.

    Args:
        base (VideoDiT): the base.

    Returns:
        dict[str, torch.Tensor]: the state dict without LoRA entries (`.base_layer.` dropped from the names).
    """
    return {
        key.replace(".base_layer.", "."): value
        for key, value in base.state_dict().items()
        if "lora_" not in key
    }

"""Each ablation switch removes exactly one thing: the parameters it owns and the inputs it reads, nothing else.

Models are perturbed first so every zero-initialised path is active; "depends on X" means that changing X
changes the velocity.
"""

import dataclasses

import pytest
import torch

from patchvsr.models import PatchVSRModel
from patchvsr.models.lora import base_state_dict
from model_helpers import perturb_, random_conditions, random_noisy

N, T, H, W = 2, 2, 16, 16
COND = random_conditions(3, N, T, (H, W), seed=21)
Z, TIME = random_noisy(3, N, T, (H, W), seed=21)

# How each input is changed; the global input has C = 3 image channels, then the mask channel.
CHANGES = {
    "lr_up": lambda c: dataclasses.replace(c, lr_up=-c.lr_up),
    "global_frame": lambda c: dataclasses.replace(
        c, global_input=torch.cat([-c.global_input[:, :3], c.global_input[:, 3:]], 1)),
    "mask": lambda c: dataclasses.replace(
        c, global_input=torch.cat([c.global_input[:, :3], 1 - c.global_input[:, 3:]], 1)),
    "crop_box": lambda c: dataclasses.replace(c, crop_box=c.crop_box.flip(1)),
    "scale": lambda c: dataclasses.replace(c, scale=c.scale + 1.5),
    "noise_level": lambda c: dataclasses.replace(c, noise_level=c.noise_level + 0.1),
}
ALL_INPUTS = set(CHANGES) | {"prompt"}


def build(**flags) -> PatchVSRModel:
    return perturb_(PatchVSRModel.from_preset("test", seed=3, **flags), seed=4, std=0.1).eval()


def inputs_read(model: PatchVSRModel) -> set[str]:
    """The inputs whose change changes the velocity (the learned prompt counts as an input)."""
    with torch.no_grad():
        reference = model.velocity(Z, TIME, COND)
        read = {name for name, change in CHANGES.items()
                if not torch.allclose(model.velocity(Z, TIME, change(COND)), reference, rtol=0, atol=1e-6)}
        model.base.prompt.mul_(-1)
        if not torch.allclose(model.velocity(Z, TIME, COND), reference, rtol=0, atol=1e-6):
            read.add("prompt")
        model.base.prompt.mul_(-1)
    return read


def parameter_names(model: PatchVSRModel) -> set[str]:
    """Parameter names, with peft's `.base_layer` wrapping of LoRA-adapted layers undone."""
    return {name.replace(".base_layer.", ".") for name, _ in model.named_parameters()}


@pytest.fixture(scope="module")
def full():
    return build()


def test_full_model_reads_every_input(full):
    assert inputs_read(full) == ALL_INPUTS


@pytest.mark.parametrize("flag, not_read", [
    ("use_global_branch", {"global_frame", "mask"}),
    ("use_position", {"crop_box", "mask"}),
    ("use_fixed_prompt", {"prompt"}),
    ("use_lora", set()),
])
def test_switch_stops_reading_only_its_inputs(flag, not_read):
    assert inputs_read(build(**{flag: False})) == ALL_INPUTS - not_read


def test_no_global_branch_removes_only_global_parameters(full):
    ablated = build(use_global_branch=False)
    removed = parameter_names(full) - parameter_names(ablated)
    assert removed and all(name.startswith(("adapter.global_branch.", "adapter.global_kv.")) for name in removed)
    assert parameter_names(ablated) <= parameter_names(full)
    cond = dataclasses.replace(COND, global_input=None)          # no global input needed at all
    with torch.no_grad():
        torch.testing.assert_close(ablated.velocity(Z, TIME, cond), ablated.velocity(Z, TIME, COND))


def test_no_lora_removes_only_lora_parameters(full):
    ablated = build(use_lora=False)
    removed = parameter_names(full) - parameter_names(ablated)
    assert removed and all("lora_" in name for name in removed)
    assert not any("lora_" in name for name in parameter_names(ablated))
    assert ablated.parameter_counts().keys() == {"base", "adapter", "embedder"}
    assert not any(p.requires_grad for p in ablated.base.parameters())
    assert base_state_dict(full.base).keys() == base_state_dict(ablated.base).keys()


@pytest.mark.parametrize("flag", ["use_position", "use_fixed_prompt"])
def test_input_switches_keep_the_same_parameters(full, flag):
    assert parameter_names(build(**{flag: False})) == parameter_names(full)


def test_global_branch_is_required_input_when_present(full):
    with pytest.raises(ValueError, match="global_input"):
        full.velocity(Z, TIME, dataclasses.replace(COND, global_input=None))

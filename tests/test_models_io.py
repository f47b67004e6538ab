"""Saving and loading: one diffusers-layout folder (config.json + patchvsr_adapter.safetensors of the new
parts, the base as a diffusers model folder `base/` with a peft LoRA file, model_card.md), identical
parameters and the same outputs after a round trip, folders of the first format still loading, no pickle,
clear errors for bad folders.

Parameters are compared bit for bit (storage is exact). Outputs are compared with fp32 tolerances
(`assert_same_outputs`): a loaded model holds the same numbers in other memory layouts, for which oneDNN
and ATen may pick other kernels (seen: 1.2e-7 apart on an AVX2-only AMD Zen 3), so bit equality of outputs
is no promise here.
"""

import json

import pytest
import torch
from safetensors.torch import save_file

from patchvsr.errors import OptionError
from patchvsr.models import PatchVSRModel, VideoDiT
from model_helpers import perturb_, random_conditions, random_noisy

N, T, H, W = 2, 2, 16, 16


def assert_same_parameters(a: torch.nn.Module, b: torch.nn.Module) -> None:
    first, second = a.state_dict(), b.state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)


def assert_same_outputs(a: torch.Tensor, b: torch.Tensor) -> None:
    """fp32 rounding apart at most: outputs are O(1), a few float ulps of accumulated rounding is 1e-6."""
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def outputs(model: PatchVSRModel) -> torch.Tensor:
    cond = random_conditions(3, N, T, (H, W), seed=11)
    z, t = random_noisy(3, N, T, (H, W), seed=11)
    with torch.no_grad():
        return model.velocity(z, t, cond)


BASE_FILES = {"base/config.json", "base/diffusion_pytorch_model.safetensors"}


def folder_files(folder) -> set[str]:
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()}


@pytest.mark.parametrize("flags, lora_file", [({}, True), ({"use_global_branch": False, "use_lora": False}, False)])
def test_round_trip_gives_identical_outputs(tmp_path, flags, lora_file):
    model = perturb_(PatchVSRModel.from_preset("test", **flags), seed=1).eval()
    model.save_pretrained(tmp_path, card="## Training\n\nnone (random weights)")
    assert folder_files(tmp_path) == {"config.json", "model_card.md", "patchvsr_adapter.safetensors",
                                      *BASE_FILES, *(["base/pytorch_lora_weights.safetensors"] if lora_file else [])}
    loaded = PatchVSRModel.from_pretrained(tmp_path)
    assert loaded.config == model.config
    assert_same_parameters(loaded, model)
    assert_same_outputs(outputs(loaded), outputs(model))
    card = (tmp_path / "model_card.md").read_text()
    assert "## Training" in card and f"{sum(model.parameter_counts().values()):,}" in card


def test_merged_lora_round_trip(tmp_path):
    model = perturb_(PatchVSRModel.from_preset("test"), seed=2).eval()
    model.merge_lora()
    model.save_pretrained(tmp_path)
    assert not (tmp_path / "base" / "pytorch_lora_weights.safetensors").exists()
    assert json.loads((tmp_path / "config.json").read_text())["lora_merged"] is True
    loaded = PatchVSRModel.from_pretrained(tmp_path)
    assert loaded.lora_merged
    assert_same_parameters(loaded, model)
    assert_same_outputs(outputs(loaded), outputs(model))


def test_half_precision_storage_halves_size_and_loads_close(tmp_path):
    model = perturb_(PatchVSRModel.from_preset("test"), seed=3).eval()
    model.save_pretrained(tmp_path / "fp32")
    model.save_pretrained(tmp_path / "fp16", dtype=torch.float16)
    size = {name: sum(p.stat().st_size for p in (tmp_path / name).rglob("*.safetensors")) for name in ("fp32", "fp16")}
    assert size["fp16"] < 0.6 * size["fp32"]
    loaded = PatchVSRModel.from_pretrained(tmp_path / "fp16")
    assert next(loaded.parameters()).dtype == torch.float32
    reference = outputs(model)
    assert (outputs(loaded) - reference).norm() < 1e-2 * reference.norm()


def test_base_alone_diffusers_round_trip_and_stage2_from_its_folder(tmp_path):
    base = perturb_(VideoDiT.from_preset("test"), seed=4).eval()
    base.save_pretrained(tmp_path / "base")
    assert {p.name for p in (tmp_path / "base").iterdir()} == {"config.json", "diffusion_pytorch_model.safetensors"}
    loaded = VideoDiT.from_pretrained(tmp_path / "base").eval()
    z, t = random_noisy(3, N, T, (H, W), seed=4)
    assert_same_parameters(loaded, base)
    with torch.no_grad():
        assert_same_outputs(loaded(z, t), base(z, t))
    config = PatchVSRModel.from_preset("test").config
    from_folder = PatchVSRModel.from_base(tmp_path / "base", config, seed=9).eval()
    from_object = PatchVSRModel.from_base(base, config, seed=9).eval()
    assert_same_parameters(from_folder, from_object)
    assert_same_outputs(outputs(from_folder), outputs(from_object))


def test_the_base_folder_is_a_diffusers_model_with_a_peft_lora(tmp_path):
    model = perturb_(PatchVSRModel.from_preset("test"), seed=6).eval()
    model.save_pretrained(tmp_path)
    base = VideoDiT.from_pretrained(tmp_path, subfolder="base")
    public = lambda config: {k: v for k, v in config.items() if not k.startswith("_")}  # noqa: E731
    assert public(base.config) == public(model.base.config)
    base.load_lora_adapter(str(tmp_path / "base" / "pytorch_lora_weights.safetensors"), adapter_name="patchvsr",
                           prefix=None)
    z, t = random_noisy(3, N, T, (H, W), seed=6)
    with torch.no_grad():
        assert_same_outputs(base(z, t), model.base(z, t))


def test_folders_of_the_first_format_still_load(tmp_path):
    """format_version 1: config.json with the base config inside, one safetensors file per part."""
    model = perturb_(PatchVSRModel.from_preset("test"), seed=7).eval()
    for name, state in model.part_state_dicts().items():
        save_file({key: value.contiguous() for key, value in state.items()}, tmp_path / f"{name}.safetensors")
    config = {"_class_name": "PatchVSRModel", "format_version": 1, "base": dict(model.base.config),
              "adapter": {k: getattr(model.config, k) for k in model.config.__dataclass_fields__},
              "lora_merged": False}
    (tmp_path / "config.json").write_text(json.dumps({**config, "base": {k: v for k, v in config["base"].items()
                                                                         if not k.startswith("_")}}))
    loaded = PatchVSRModel.from_pretrained(tmp_path)
    assert_same_parameters(loaded, model)
    assert_same_outputs(outputs(loaded), outputs(model))
    loaded.save_pretrained(tmp_path)                      # rewritten in place in the current format
    assert not list(tmp_path.glob("*.safetensors"))[1:] and json.loads(
        (tmp_path / "config.json").read_text())["format_version"] == 2
    assert_same_parameters(PatchVSRModel.from_pretrained(tmp_path), model)


def test_no_pickle_anywhere(tmp_path):
    PatchVSRModel.from_preset("test").save_pretrained(tmp_path)
    for path in (p for p in tmp_path.rglob("*") if p.is_file()):
        assert path.suffix in {".json", ".safetensors", ".md"}
        assert not path.read_bytes().startswith(b"\x80")         # pickle protocol header


def test_bad_folders_raise_one_line_option_errors(tmp_path):
    with pytest.raises(OptionError, match="no config.json"):
        PatchVSRModel.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text('{"_class_name": "UNet2DModel"}')
    with pytest.raises(OptionError, match="not a PatchVSRModel"):
        PatchVSRModel.from_pretrained(tmp_path)
    PatchVSRModel.from_preset("test").save_pretrained(tmp_path)
    (tmp_path / "base" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(OptionError, match="base/diffusion_pytorch_model.safetensors"):
        PatchVSRModel.from_pretrained(tmp_path)
    (tmp_path / "base" / "config.json").unlink()
    with pytest.raises(OptionError, match="no base/config.json"):
        PatchVSRModel.from_pretrained(tmp_path)

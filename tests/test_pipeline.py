"""`PatchVSRPipeline`: a diffusers pipeline that saves, loads back through `DiffusionPipeline.from_pretrained`, and
gives the frames the CLI's clip loop gives."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline
from PIL import Image

from patchvsr.api import upscale_stream
from patchvsr.errors import OptionError
from patchvsr.methods import get_upscaler
from patchvsr.pipeline import PatchVSRPipeline

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pipeline") / "patchvsr-tiny"
    PatchVSRPipeline.from_model("tiny").save_pretrained(folder)
    return folder


def clip(frames: int = 3) -> list[np.ndarray]:
    return [np.random.default_rng(i).integers(0, 256, (16, 24, 3), dtype=np.uint8) for i in range(frames)]


def test_the_saved_folder_is_a_diffusers_pipeline(saved):
    index = json.loads((saved / "model_index.json").read_text())
    assert index["_class_name"] == ["pipeline", "PatchVSRPipeline"] and index["residual_std"] == 0.12
    assert index["model"] == ["patchvsr.models.patchvsr", "PatchVSRModel"]
    assert (saved / "model" / "config.json").is_file() and "patchvsr.pipeline" in (saved / "pipeline.py").read_text()
    loaded = DiffusionPipeline.from_pretrained(str(saved), trust_remote_code=True)
    assert type(loaded).__name__ == "PatchVSRPipeline" and loaded.config.residual_std == 0.12


def test_the_pipeline_gives_the_frames_of_the_cli_path(saved):
    frames = clip()
    pipe = PatchVSRPipeline.from_pretrained(saved)
    out = pipe(frames, scale=2, output_type="np").frames
    expected = np.stack(list(upscale_stream(frames, get_upscaler("tiny", device="cpu"), (32, 48))))
    assert out.shape == (3, 32, 48, 3) and out.dtype == np.uint8 and np.array_equal(out, expected)
    as_tensor = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255
    tensor_out = pipe(as_tensor, size="48x32", output_type="pt").frames
    assert tensor_out.shape == (3, 3, 32, 48)
    assert torch.equal(tensor_out, torch.from_numpy(out).permute(0, 3, 1, 2) / 255)
    pil = pipe([Image.fromarray(f) for f in frames], scale=2).frames
    assert [image.size for image in pil] == [(48, 32)] * 3 and np.array_equal(np.asarray(pil[1]), out[1])


def test_calling_the_pipeline_leaves_its_model_as_loaded(saved, tmp_path):
    pipe = PatchVSRPipeline.from_pretrained(saved)
    before = {name: value.clone() for name, value in pipe.model.state_dict().items()}
    pipe(clip(2), scale=2)
    after = pipe.model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("frames, words", [([], "no frames"), ([np.zeros((4, 4), np.uint8)], "RGB"),
                                           (torch.zeros(2, 4, 8, 8), "(T, 3, H, W)")])
def test_bad_inputs_are_option_errors(saved, frames, words):
    with pytest.raises(OptionError, match=words.replace("(", r"\(").replace(")", r"\)")):
        PatchVSRPipeline.from_pretrained(saved)(frames)
    with pytest.raises(OptionError, match="output_type"):
        PatchVSRPipeline.from_pretrained(saved)(clip(1), output_type="latent")

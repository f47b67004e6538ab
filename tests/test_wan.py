"""The Wan backend on a tiny random-config WanTransformer3DModel + AutoencoderKLWan (no downloads, CPU)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from diffusers import WanTransformer3DModel
from safetensors import safe_open

from patchvsr.api import upscale_video
from patchvsr.backends.wan_model import WanPatchVSR
from wan_helpers import random_prompt, tiny_wan, write_tiny_wan
from patchvsr.backends.wan_train import degradation, encode_prompt, training_step
from patchvsr.backends.wan_upscaler import WanUpscaler, load_wan_upscaler, pad_to_multiple
from patchvsr.backends.wan_vae import WanLatents
from patchvsr.cli import main
from patchvsr.errors import InputError, OptionError
from patchvsr.methods import get_upscaler
from patchvsr.methods.patchvsr import SamplerOptions
from model_helpers import perturb_, random_conditions
from patchvsr.train import data, motion
from patchvsr.train.degrade import degrade

CPU = torch.device("cpu")
GEOMETRY = {"window": 32, "clip_frames": 5}  # 4 x 4 latent windows, 2 latent frames


pytestmark = pytest.mark.usefixtures("one_thread")


def _model(seed: int = 0, perturb: bool = False) -> WanPatchVSR:
    base, _ = tiny_wan(seed)
    model = WanPatchVSR.from_base(base, random_prompt(), lora_rank=2, lora_alpha=2.0, geometry=GEOMETRY)
    return perturb_(model, seed + 1, only_trainable=True) if perturb else model


def _inputs(n: int = 3):
    z = torch.randn((n, 4, 2, 8, 8), generator=torch.Generator().manual_seed(1))
    return z, torch.linspace(0.9, 0.1, n), random_conditions(4, n, 2, (8, 8), seed=2, global_size=(8, 8))


@pytest.fixture(scope="module")
def adapter_folder(tmp_path_factory):
    """A tiny Wan base folder and a trained-like (perturbed) adapter saved beside it."""
    root = tmp_path_factory.mktemp("wan")
    write_tiny_wan(root / "base")
    base = WanTransformer3DModel.from_pretrained(root / "base" / "transformer")
    model = WanPatchVSR.from_base(base, random_prompt(), lora_rank=2, lora_alpha=2.0, geometry=GEOMETRY)
    perturb_(model, 5, std=0.02, only_trainable=True)
    model.save_adapter(root / "adapter", "../base")
    return root / "adapter"


def test_zero_initialised_adapter_keeps_the_base_output():
    model, (z, t, cond) = _model(), _inputs()
    prompt = model.adapter.prompt_embeds.expand(3, -1, -1)
    with torch.no_grad():
        base = model.base(z, t * 1000, prompt).sample
        adapted = model.velocity(z, t, cond)
    torch.testing.assert_close(adapted, base, rtol=0, atol=1e-6)


@pytest.mark.parametrize("part", ["residual_proj", "global_kv", "condition_embedder", "lora"])
def test_every_zero_initialised_path_reaches_the_output(part):
    """Perturbing any one new path alone changes the velocity: each is wired in and starts at zero."""
    model, (z, t, cond) = _model(), _inputs()
    with torch.no_grad():
        before = model.velocity(z, t, cond)
        for name, parameter in model.named_parameters():
            if parameter.requires_grad and part in name:
                parameter.add_(0.1 * torch.randn(parameter.shape, generator=torch.Generator().manual_seed(3)))
        after = model.velocity(z, t, cond)
    assert (after - before).abs().max() > 1e-4


def test_adapter_alone_saves_and_loads(adapter_folder, tmp_path):
    files = sorted(p.name for p in adapter_folder.iterdir())
    assert files == ["config.json", "diffusion_pytorch_model.safetensors", "lora.safetensors", "model_card.md",
                     "patchvsr_wan.json"]
    with safe_open(adapter_folder / "diffusion_pytorch_model.safetensors", "pt") as weights:
        prefixes = {key.split(".")[0] for key in weights.keys()}
    assert "blocks" not in prefixes and "proj_out" not in prefixes     # no base weight is copied in
    assert {"patch_blocks", "residual_proj", "global_kv", "condition_embedder", "prompt_embeds"} <= prefixes
    saved = WanPatchVSR.load(adapter_folder)
    again_folder = tmp_path / "again"
    saved.save_adapter(again_folder, adapter_folder.parent / "base")
    loaded = WanPatchVSR.load(again_folder)
    z, t, cond = _inputs(2)
    with torch.no_grad():
        torch.testing.assert_close(loaded.velocity(z, t, cond), saved.velocity(z, t, cond), rtol=0, atol=0)
        assert (saved.velocity(z, t, cond) - _model().velocity(z, t, cond)).abs().max() > 1e-4  # trained-like


def test_missing_base_is_a_clear_error(adapter_folder, tmp_path):
    info = json.loads((adapter_folder / "patchvsr_wan.json").read_text())
    moved = tmp_path / "moved"
    moved.mkdir()
    for file in adapter_folder.iterdir():
        (moved / file.name).write_bytes(file.read_bytes())
    (moved / "patchvsr_wan.json").write_text(json.dumps({**info, "base": "/nowhere/wan"}))
    with pytest.raises(InputError, match="Wan base is not there"):
        load_wan_upscaler(moved, CPU)
    with pytest.raises(InputError, match="not a PatchVSR Wan adapter"):
        WanPatchVSR.load(tmp_path)


def test_upscale_clip_runs_vae_tiling_sampler_vae(adapter_folder):
    upscaler = get_upscaler(str(adapter_folder), "cpu", dtype="fp32", steps=2, seed=4)
    assert isinstance(upscaler, WanUpscaler)
    assert (upscaler.clip_frames, upscaler.clip_overlap, upscaler.window) == (5, 1, 32)
    clip = torch.rand((5, 3, 9, 13), generator=torch.Generator().manual_seed(0))
    out = upscaler.upscale_clip(clip, (37, 51), clip_index=2)                 # padded to 40x56, latent 5x7
    assert out.shape == (5, 3, 37, 51) and out.dtype == torch.float32
    assert 0 <= out.min() and out.max() <= 1 and out.std() > 0.01
    # 4x4 latent windows on the 5x7 latent canvas: 2x2 primary + 2 vseam + 2 hseam + 1 cross
    assert upscaler.describe() == {"windows_per_clip": 9, "steps": 2, "fusion": "weighted", "temporal_radius": 8,
                                   "dtype": "fp32", "dtype_reason": "--dtype fp32"}
    torch.testing.assert_close(upscaler.upscale_clip(clip, (37, 51), clip_index=2), out, rtol=0, atol=0)
    assert not torch.equal(upscaler.upscale_clip(clip, (37, 51), clip_index=3), out)  # seeds follow the clip


def test_upscale_video_keeps_frame_count_and_size(adapter_folder, make_video, tmp_path, decode_video):
    src = make_video("in.mp4", size=(12, 10), frames=7)     # clips of 5 sharing 1: 2 clips, the last padded
    stats = upscale_video(src, tmp_path / "out.mkv", scale=3, model=str(adapter_folder), dtype="fp32")
    frames = decode_video(tmp_path / "out.mkv")
    assert frames.shape == (7, 30, 36, 3) and (stats["frames"], stats["model"]) == (7, "adapter")
    assert frames.std() > 1.0


def test_offload_gives_the_same_result(adapter_folder):
    clip = torch.rand((5, 3, 8, 8), generator=torch.Generator().manual_seed(1))
    plain = load_wan_upscaler(adapter_folder, CPU, dtype="fp32").upscale_clip(clip, (16, 16), 0)
    offload = load_wan_upscaler(adapter_folder, CPU, dtype="fp32", offload=True).upscale_clip(clip, (16, 16), 0)
    torch.testing.assert_close(offload, plain, rtol=0, atol=0)


@pytest.mark.parametrize("options, word", [(dict(window=40), "--window"), (dict(clip_frames=4), "--clip-frames")])
def test_bad_geometry_is_refused(options, word):
    _, vae = tiny_wan()
    with pytest.raises(OptionError, match=word):
        WanUpscaler(_model(), WanLatents(vae, None), SamplerOptions(**options), CPU)


def test_tiled_vae_keeps_shapes_and_values_close():
    _, vae = tiny_wan()
    video = pad_to_multiple(torch.rand((3, 5, 70, 66), generator=torch.Generator().manual_seed(2)) * 2 - 1, 8)
    assert video.shape == (3, 5, 72, 72)
    whole, tiled = WanLatents(vae, tile=None), WanLatents(vae, tile=64)   # 72 px > 64: 2 x 2 tiles
    latent = whole.encode(video[None])
    assert latent.shape == (1, 4, 2, 9, 9)
    assert (tiled.encode(video[None]) - latent).abs().mean() < 0.1 * latent.abs().mean()
    assert tiled.decode(latent).shape == (1, 3, 5, 72, 72)


def test_one_training_step_moves_only_the_adapter_and_lora():
    model, (_, vae) = _model(), tiny_wan()
    latents = WanLatents(vae, tile=None)
    clips = torch.rand((2, 3, 5, 48, 48), generator=torch.Generator().manual_seed(0))
    batch = degrade(clips, degradation(model), [torch.Generator().manual_seed(i) for i in range(2)])
    frozen = {n: p.detach().clone() for n, p in model.base.named_parameters() if "lora_" not in n}
    trained = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=1e-3)
    loss = training_step(model, latents, optimizer, batch, torch.tensor([0.3, 0.8]), torch.Generator().manual_seed(1))
    assert np.isfinite(loss) and loss > 0
    assert all(torch.equal(p, frozen[n]) for n, p in model.base.named_parameters() if n in frozen)
    moved = [n for n, p in model.named_parameters() if n in trained and not torch.equal(p, trained[n])]
    assert any("lora_B" in n for n in moved) and any("residual_proj" in n for n in moved)
    assert any("global_kv" in n and "gate" in n for n in moved)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A tiny `patchvsr data` folder: 2 train + 1 val clips of 5 frames x 40 px from random-texture photos."""
    root = tmp_path_factory.mktemp("wan_data")
    (root / "raw").mkdir()
    rng = np.random.default_rng(0)
    for index in range(3):
        small = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
        Image.fromarray(small).resize((160, 120), Image.Resampling.BILINEAR).save(root / "raw" / f"p{index}.png")
    clip = motion.ClipConfig(frames=5, size=40, min_energy=0.01, tries=2)
    config = data.DataConfig(clips=2, val_clips=1, probe_draws=2, skimage_images=False, clip=clip)
    data.prepare_data(root / "data", config, raw_dir=root / "raw", log=lambda line: None)
    return root / "data"


def test_cli_init_encodes_the_prompt_and_train_writes_an_adapter(tmp_path, data_dir, capsys):
    base = write_tiny_wan(tmp_path / "base", text_encoder=True)
    assert main(["wan", "init", str(base), "-o", str(tmp_path / "adapter"), "--window", "32", "--clip-frames", "5",
                 "--lora-rank", "2", "--prompt", "a sharp video"]) == 0
    prompt = WanPatchVSR.load(tmp_path / "adapter").adapter.prompt_embeds
    expected = encode_prompt(base, "a sharp video")
    assert prompt.shape == (512, 16)
    torch.testing.assert_close(prompt, expected, rtol=1e-5, atol=1e-6)  # the encoder run twice: fp32 rounding
    assert prompt[:3].abs().sum() > 0 and prompt[3:].abs().sum() == 0     # 3 tokens, zeros after (Wan's way)
    assert main(["wan", "train", str(tmp_path / "adapter"), "--data", str(data_dir), "-o", str(tmp_path / "trained"),
                 "--steps", "1", "--device", "cpu"]) == 0
    assert "steps=1" in capsys.readouterr().out
    trained = WanPatchVSR.load(tmp_path / "trained")
    gates = torch.cat([layer.gate for layer in trained.adapter.global_kv])
    assert gates.abs().max() > 0                                           # one AdamW step moved the zero gates
    assert main(["wan", "init", str(base), "-o", str(tmp_path / "bad"), "--clip-frames", "6"]) == 2

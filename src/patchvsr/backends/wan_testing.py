"""Tiny random-config Wan bases (diffusers layout) for tests and dry runs: no downloads, seconds on a CPU.

The configurations follow diffusers' own tiny Wan test models (2 heads of 12 channels, 2 layers; a VAE of
base width 3 with 4 latent channels), with the weights drawn from an explicit seed.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import AutoencoderKLWan, WanTransformer3DModel

TINY_TRANSFORMER = dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=4,
                        out_channels=4, text_dim=16, freq_dim=32, ffn_dim=32, num_layers=2, cross_attn_norm=True,
                        qk_norm="rms_norm_across_heads", rope_max_seq_len=32)
TINY_VAE = dict(base_dim=3, z_dim=4, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True],
                latents_mean=[0.1, -0.2, 0.05, 0.0], latents_std=[1.5, 0.8, 1.2, 1.0])


def tiny_wan(seed: int = 0) -> tuple[WanTransformer3DModel, AutoencoderKLWan]:
    """A random tiny Wan transformer and VAE (float32, eval mode); weights depend only on `seed`."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = WanTransformer3DModel(**TINY_TRANSFORMER)
        vae = AutoencoderKLWan(**TINY_VAE)
    return transformer.eval(), vae.eval()


def write_tiny_wan(folder: str | Path, seed: int = 0) -> Path:
    """Write a tiny Wan base as a diffusers folder: model_index.json, transformer/, vae/. Returns the folder."""
    folder = Path(folder)
    transformer, vae = tiny_wan(seed)
    transformer.save_pretrained(folder / "transformer")
    vae.save_pretrained(folder / "vae")
    index = {"_class_name": "WanPipeline", "transformer": ["diffusers", "WanTransformer3DModel"],
             "vae": ["diffusers", "AutoencoderKLWan"]}
    (folder / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    return folder


def random_prompt(length: int = 3, text_dim: int = 16, seed: int = 0) -> torch.Tensor:
    """A stand-in fixed prompt embedding (length, text_dim) ~ N(0, 1) for bases without a text encoder."""
    return torch.randn((length, text_dim), generator=torch.Generator().manual_seed(seed))

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


def write_tiny_wan(folder: str | Path, seed: int = 0, text_encoder: bool = False) -> Path:
    """Write a tiny Wan base as a diffusers folder: model_index.json, transformer/, vae/ and, with
    `text_encoder`, a tiny UMT5 text_encoder/ and a word-level tokenizer/. Returns the folder."""
    folder = Path(folder)
    transformer, vae = tiny_wan(seed)
    transformer.save_pretrained(folder / "transformer")
    vae.save_pretrained(folder / "vae")
    index = {"_class_name": "WanPipeline", "transformer": ["diffusers", "WanTransformer3DModel"],
             "vae": ["diffusers", "AutoencoderKLWan"]}
    if text_encoder:
        write_tiny_text_encoder(folder, seed)
        index |= {"text_encoder": ["transformers", "UMT5EncoderModel"],
                  "tokenizer": ["transformers", "PreTrainedTokenizerFast"]}
    (folder / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    return folder


def write_tiny_text_encoder(folder: Path, seed: int = 0) -> None:
    """A UMT5 encoder of width TINY_TRANSFORMER["text_dim"] and a tokenizer knowing a few words."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

    words = ["<pad>", "</s>", "<unk>", "a", "sharp", "detailed", "high-quality", "video", ","]
    tokenizer = Tokenizer(models.WordLevel({word: i for i, word in enumerate(words)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(folder / "tokenizer")
    config = UMT5Config(vocab_size=len(words), d_model=TINY_TRANSFORMER["text_dim"], d_kv=4, d_ff=32, num_layers=1,
                        num_heads=2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        UMT5EncoderModel(config).save_pretrained(folder / "text_encoder")


def random_prompt(length: int = 3, text_dim: int = 16, seed: int = 0) -> torch.Tensor:
    """A stand-in fixed prompt embedding (length, text_dim) ~ N(0, 1) for bases without a text encoder."""
    return torch.randn((length, text_dim), generator=torch.Generator().manual_seed(seed))

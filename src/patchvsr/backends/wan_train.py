"""Creating and training a PatchVSR adapter on a Wan base: `create_adapter`, `wan_flow_loss`, `train_wan_adapter`.

Training reuses the project's data and degradation (`patchvsr data`, `train.samples.PositionSamples`) with
windows of the adapter's native size and length (T = 4k + 1 frames), and moves the targets to latent space:
z0 = latent(HR window), the condition = latent(V_up window) noise-augmented to its noise level in latent space
(the paper's timestep 200-300), G = latent(V_up canvas at window size), the position mask max-pooled to the
latent grid. Loss: MSE(v, ε - z0) at z_t = (1 - t)·z0 + t·ε (`patchvsr.sampling`). Only the adapter and the
LoRA train; the base and the VAE stay frozen. The first call of `encode_prompt` needs the base's
`text_encoder/` and `tokenizer/` (UMT5, local files only); afterwards the prompt lives in the adapter.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKLWan, WanTransformer3DModel
from einops import repeat
from torch.utils.data import DataLoader

from patchvsr.backends.wan_model import WanPatchVSR, base_folder, read_info
from patchvsr.backends.wan_vae import WanLatents
from patchvsr.errors import InputError
from patchvsr.models.conditions import WindowConditions
from patchvsr.sampling import add_noise, velocity_target
from patchvsr.train.degrade import DegradeConfig, Degraded
from patchvsr.train.samples import FlowDraw, PositionSamples, StepPositions, split_batch

DEFAULT_PROMPT = "a sharp, detailed, high-quality video"


def encode_prompt(base: str | Path, text: str = DEFAULT_PROMPT, max_length: int = 512) -> torch.Tensor:
    """The fixed prompt as the Wan pipelines encode it: UMT5 states of the tokens, zero after the last one.

    Args:
        base (str | Path): a Wan diffusers folder with text_encoder/ and tokenizer/.
        text (str, optional): the prompt.
        max_length (int, optional): tokens kept (padded or truncated to it).

    Returns:
        torch.Tensor: (max_length, text_dim) float32 on the CPU.

    Raises:
        InputError: the folder has no text_encoder/ and tokenizer/.
    """
    from transformers import AutoTokenizer, UMT5EncoderModel

    base = Path(base)
    if not (base / "text_encoder").is_dir() or not (base / "tokenizer").is_dir():
        raise InputError(f"{base}: no text_encoder/ and tokenizer/ to encode the fixed prompt with")
    tokenizer = AutoTokenizer.from_pretrained(base / "tokenizer", local_files_only=True)
    encoder = UMT5EncoderModel.from_pretrained(base / "text_encoder", local_files_only=True).eval()
    tokens = tokenizer([text], padding="max_length", max_length=max_length, truncation=True, return_tensors="pt")
    with torch.no_grad():
        states = encoder(tokens.input_ids, attention_mask=tokens.attention_mask).last_hidden_state[0]
    return (states * tokens.attention_mask[0, :, None]).float()


def create_adapter(base: str | Path, out: str | Path, prompt_embeds: torch.Tensor | None = None,
                   prompt: str = DEFAULT_PROMPT, window: int = 512, clip_frames: int = 17, lora_rank: int = 16,
                   seed: int = 0, **options) -> WanPatchVSR:
    """A fresh (zero-initialised) adapter for the Wan base in `base`, saved to `out`; returns the model.

    Args:
        base (str | Path): the Wan diffusers folder (transformer/, vae/, and text_encoder/ + tokenizer/ to encode
            the prompt).
        out (str | Path): the adapter folder to write.
        prompt_embeds (torch.Tensor, optional): (L, text_dim) float; None: encode `prompt` with the base's encoder.
        prompt (str, optional): the fixed prompt.
        window (int, optional): the native window side in pixels.
        clip_frames (int, optional): the native frames per clip, 4k + 1.
        lora_rank (int, optional): LoRA rank on the base; 0: no LoRA.
        seed (int, optional): seed of the new weights.
        **options: patch_depth, global_depth, cond_freq_dim, use_global_branch, use_position, lora_alpha.

    Returns:
        WanPatchVSR: the base with its new adapter.

    Raises:
        InputError: no text_encoder/ and tokenizer/ to encode the prompt with.
    """
    base = Path(base).resolve()
    transformer = WanTransformer3DModel.from_pretrained(base / "transformer")
    if prompt_embeds is None:
        prompt_embeds = encode_prompt(base, prompt)
    alpha = options.pop("lora_alpha", float(lora_rank))
    model = WanPatchVSR.from_base(transformer, prompt_embeds, seed, lora_rank, alpha,
                                  {"window": window, "clip_frames": clip_frames}, **options)
    model.save_adapter(out, base)
    return model


def wan_flow_loss(model: WanPatchVSR, latents: WanLatents, batch: Degraded, t: torch.Tensor,
                  generator: torch.Generator) -> torch.Tensor:
    """Rectified-flow loss of a degraded batch in latent space.

    Args:
        model (WanPatchVSR): the model trained.
        latents (WanLatents): the VAE.
        batch (Degraded): pixel windows hr, lr_up (B, 3, T, w, w) in [-1, 1], T = 4k + 1; G (B, 3, T, w, w);
            position_mask (B, 1, w, w); scale, crop box, noise level.
        t (torch.Tensor): (B,) the flow times in [0, 1].
        generator (torch.Generator): a CPU generator for the latent noises.

    Returns:
        torch.Tensor: the MSE, a float32 scalar.
    """
    hr = latents.encode(batch.hr)                                              # (B, C, t, h, w)
    level = batch.noise_level.view(-1, 1, 1, 1, 1).to(hr)
    clean = latents.encode(batch.lr_up)
    cond = add_noise(clean, _noise(clean, generator), level)                   # noise-augmented condition
    guide = latents.encode(batch.global_frame)                                 # (B, C, t, g, g)
    mask = F.adaptive_max_pool2d(batch.position_mask.to(hr), guide.shape[-2:])  # (B, 1, g, g), any overlap
    global_input = torch.cat([guide, repeat(mask, "b one h w -> b one t h w", t=guide.shape[2])], dim=1)
    conditions = WindowConditions(cond, global_input, batch.scale.to(hr), batch.crop_box.to(hr),
                                  batch.noise_level.to(hr))
    noise = _noise(hr, generator)
    z_t = add_noise(hr, noise, t.view(-1, 1, 1, 1, 1).to(hr))
    velocity = model(z_t, t.to(hr), conditions)
    return F.mse_loss(velocity.float(), velocity_target(hr, noise))


def training_step(model: WanPatchVSR, latents: WanLatents, optimizer: torch.optim.Optimizer, batch: Degraded,
                  t: torch.Tensor, generator: torch.Generator, grad_clip: float = 1.0) -> float:
    """One optimisation step; returns the loss before the update.

    Args:
        model (WanPatchVSR): the model trained.
        latents (WanLatents): the VAE.
        optimizer (torch.optim.Optimizer): over `model.trainable_parameters()`.
        batch (Degraded): the degraded batch (see `wan_flow_loss`).
        t (torch.Tensor): (B,) the flow times in [0, 1].
        generator (torch.Generator): a CPU generator for the latent noises.
        grad_clip (float, optional): the gradient norm clip.

    Returns:
        float: the loss.
    """
    loss = wan_flow_loss(model, latents, batch, t, generator)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.trainable_parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


def degradation(model: WanPatchVSR) -> DegradeConfig:
    """Training windows of the adapter's native geometry, G at window size.

    Args:
        model (WanPatchVSR): the model, its geometry read.

    Returns:
        DegradeConfig: window and frames of the geometry, global_size = window.
    """
    window, frames = model.geometry["window"], model.geometry["clip_frames"]
    return DegradeConfig(window=window, frames=frames, global_size=window)


def train_wan_adapter(adapter: str | Path, data_dir: str | Path, out: str | Path, steps: int, batch: int = 1,
                      lr: float = 1e-4, seed: int = 0, device: str = "cpu",
                      log: Callable[[str], None] = print) -> dict:
    """Train the adapter folder `adapter` for `steps` steps on a `patchvsr data` folder; save it to `out`.

    The data's clips must have at least the adapter's clip_frames frames and window pixels per side.

    Args:
        adapter (str | Path): the adapter folder to start from.
        data_dir (str | Path): a folder prepared by `patchvsr data`.
        out (str | Path): the trained adapter folder to write.
        steps (int): optimisation steps.
        batch (int, optional): windows per step.
        lr (float, optional): the AdamW learning rate.
        seed (int, optional): seed of the data order and the noises.
        device (str, optional): the torch device, e.g. "cpu" or "cuda".
        log (Callable[[str], None], optional): told one line per step.

    Returns:
        dict: steps done and the last loss (None without steps).

    Raises:
        InputError: not an adapter folder, or its base is missing.
    """
    adapter = Path(adapter)
    base = base_folder(adapter, read_info(adapter))
    model = WanPatchVSR.load(adapter).to(device).train()
    latents = WanLatents(AutoencoderKLWan.from_pretrained(base / "vae").to(device), tile=None)
    dataset = PositionSamples(data_dir, "train", degradation(model), FlowDraw(), seed)
    loader = DataLoader(dataset, batch_size=batch, sampler=StepPositions(0, batch))
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=lr, weight_decay=0.0)
    generator, losses = torch.Generator().manual_seed(seed), []
    for step, samples in zip(range(steps), loader):
        degraded, t, _ = split_batch(samples)
        degraded = Degraded(**{name: getattr(degraded, name).to(device) for name in Degraded.__dataclass_fields__})
        losses.append(training_step(model, latents, optimizer, degraded, t.to(device), generator))
        log(f"step {step + 1}: loss {losses[-1]:.4f}")
    model.save_adapter(out, base, card=f"Trained {len(losses)} steps on {data_dir}, lr {lr}, batch {batch}.")
    return {"steps": len(losses), "loss": losses[-1] if losses else None}


def _noise(like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """N(0, I) of `like`'s shape from the CPU generator, on `like`'s device and dtype."""
    return torch.randn(like.shape, generator=generator).to(like)

"""Pixels <-> normalised Wan latents through diffusers' `AutoencoderKLWan`, tiled for large frames.

Wan's VAE is causal in time: T = 4k + 1 frames become k + 1 latent frames (the first frame alone, then groups
of four) and each side shrinks 8×. Latents are normalised per channel with the VAE config's
`latents_mean` / `latents_std`, as the Wan pipelines do, so the DiT sees unit-scale latents.
Spatial tiling (diffusers' `enable_tiling`) bounds the VAE's memory by the tile, whatever the frame size.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKLWan

from patchvsr.errors import OptionError


class WanLatents:
    """vae: an `AutoencoderKLWan` (kept in float32); tile: tile side in pixels for encode/decode (a multiple
    of 32, tiles overlap by a quarter), or None for untiled."""

    def __init__(self, vae: AutoencoderKLWan, tile: int | None = 256):
        if tile is not None and (not isinstance(tile, int) or tile < 64 or tile % 32):
            raise OptionError(f"VAE tile must be a multiple of 32 and >= 64 px, got {tile!r}")
        self.vae = vae.eval().requires_grad_(False)
        self.spatial = int(vae.config.scale_factor_spatial or 8)
        self.temporal = int(vae.config.scale_factor_temporal or 4)
        if tile is not None:
            vae.enable_tiling(tile, tile, tile - tile // 4, tile - tile // 4)
        mean, std = vae.config.latents_mean, vae.config.latents_std
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1, 1)

    @property
    def channels(self) -> int:
        return int(self.vae.config.z_dim)

    def check_frames(self, frames: int) -> None:
        """OptionError unless `frames` is 4k + 1 (what the causal VAE maps to k + 1 latent frames).

        Args:
            frames (int): frames per clip.

        Raises:
            OptionError: `frames` is not 4k + 1 (k >= 0).
        """
        if frames < 1 or (frames - 1) % self.temporal:
            raise OptionError(f"--clip-frames must be {self.temporal}k + 1 (1, 5, 9, 13, 17, ...) for the Wan VAE, "
                              f"got {frames}")

    def latent_frames(self, frames: int) -> int:
        """Latent frames of a clip.

        Args:
            frames (int): pixel frames, 4k + 1.

        Returns:
            int: k + 1.

        Raises:
            OptionError: `frames` is not 4k + 1.
        """
        self.check_frames(frames)
        return 1 + (frames - 1) // self.temporal

    @torch.no_grad()
    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """Encode pixels to normalised latents (the posterior's mode).

        Args:
            pixels (torch.Tensor): (N, 3, T, H, W) in [-1, 1], T = 4k + 1, H and W multiples of 8.

        Returns:
            torch.Tensor: (N, C, k + 1, H / 8, W / 8) float32 on the VAE's device, about unit scale.

        Raises:
            OptionError: T is not 4k + 1.
        """
        self.check_frames(pixels.shape[2])
        device = self.vae.device
        moments = self.vae.encode(pixels.to(device, torch.float32)).latent_dist.mode()
        return (moments - self.mean.to(device)) / self.std.to(device)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Decode normalised latents to pixels.

        Args:
            latents (torch.Tensor): (N, C, t, h, w) normalised latents.

        Returns:
            torch.Tensor: (N, 3, 4(t - 1) + 1, 8h, 8w) float32 in [-1, 1] on the VAE's device.
        """
        device = self.vae.device
        latents = latents.to(device, torch.float32) * self.std.to(device) + self.mean.to(device)
        return self.vae.decode(latents).sample

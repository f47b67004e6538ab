"""Classical interpolation upscalers: bicubic (PyTorch) and Lanczos (OpenCV), one frame at a time."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

NOT_APPLICABLE = {"windows_per_clip": None, "steps": None, "fusion": None}


@dataclass(frozen=True)
class Bicubic:
    """Bicubic interpolation (Keys a = -0.75, `align_corners=False`): the same upsampler as training's
    degradation, so a model's input and this baseline agree.

    Each axis is scaled independently, so a requested size with another aspect ratio stretches the frame.
    """

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    name: str = "bicubic"
    clip_frames: int = 1
    clip_overlap: int = 0

    def upscale_clip(self, clip: torch.Tensor, size: tuple[int, int], clip_index: int) -> torch.Tensor:
        """clip: (T, 3, H, W) float32 in [0, 1]; size: (out_h, out_w) -> (T, 3, out_h, out_w) in [0, 1]."""
        frames = clip.to(self.device)
        out = F.interpolate(frames, size=size, mode="bicubic", align_corners=False)
        return out.clamp_(0.0, 1.0).cpu()

    def describe(self) -> dict:
        return dict(NOT_APPLICABLE)


@dataclass(frozen=True)
class Lanczos:
    """Lanczos interpolation over 8×8 neighbours (OpenCV `INTER_LANCZOS4`), on the CPU whatever the device.

    Each axis is scaled independently, so a requested size with another aspect ratio stretches the frame.
    """

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    name: str = "lanczos"
    clip_frames: int = 1
    clip_overlap: int = 0

    def upscale_clip(self, clip: torch.Tensor, size: tuple[int, int], clip_index: int) -> torch.Tensor:
        """clip: (T, 3, H, W) float32 in [0, 1]; size: (out_h, out_w) -> (T, 3, out_h, out_w) in [0, 1]."""
        out_h, out_w = size
        frames = rearrange(clip.cpu().numpy(), "t c h w -> t h w c")
        resized = [cv2.resize(np.ascontiguousarray(frame), (out_w, out_h), interpolation=cv2.INTER_LANCZOS4)
                   for frame in frames]
        out = torch.from_numpy(rearrange(np.stack(resized), "t h w c -> t c h w", c=3).copy())
        return out.clamp_(0.0, 1.0)

    def describe(self) -> dict:
        return dict(NOT_APPLICABLE)

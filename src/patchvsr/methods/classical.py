"""Classical interpolation upscalers, one frame at a time: bicubic and Lanczos."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

from patchvsr.sizes import HW

NOT_APPLICABLE = {"windows_per_clip": None, "steps": None, "fusion": None, "temporal_radius": None, "dtype": None,
                  "dtype_reason": None}


def resize_cv2(clip: torch.Tensor, size: HW, interpolation: int) -> torch.Tensor:
    """Resize a clip by OpenCV, each axis scaled on its own.

    The result is a channels-last view (memory (T, out_h, out_w, 3)), which quantising for the writer
    turns into (H, W, 3) frames without another copy.

    Args:
        clip (torch.Tensor): (T, 3, H, W) float32, any range, any device (copied to the CPU).
        size (HW): (out_h, out_w) of the result.
        interpolation (int): an OpenCV flag, e.g. `cv2.INTER_CUBIC` or `cv2.INTER_LANCZOS4`.

    Returns:
        torch.Tensor: (T, 3, out_h, out_w) float32 on the CPU, not clamped.
    """
    out_h, out_w = size
    frames = rearrange(clip.cpu().numpy(), "t c h w -> t h w c")
    out = np.empty((len(frames), out_h, out_w, 3), dtype=np.float32)
    for frame, target in zip(frames, out):
        cv2.resize(np.ascontiguousarray(frame, dtype=np.float32), (out_w, out_h), dst=target,
                   interpolation=interpolation)
    return rearrange(torch.from_numpy(out), "t h w c -> t c h w")


@dataclass(frozen=True)
class Bicubic:
    """Bicubic interpolation (Keys a = -0.75, pixel centres aligned as `align_corners=False`): the same
    upsampler as training's degradation, so a model's input and this baseline agree.

    On the CPU OpenCV computes it (faster than PyTorch there: docs/RESULTS.md; equal to
    `F.interpolate(mode="bicubic", align_corners=False)`, clamped, within 1e-6); on CUDA PyTorch does.
    Each axis is scaled on its own, so a requested size with another aspect ratio stretches the frame.
    """

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    name: str = "bicubic"
    clip_frames: int = 1
    clip_overlap: int = 0

    def upscale_clip(self, clip: torch.Tensor, size: HW, clip_index: int) -> torch.Tensor:
        """Upscale a clip frame by frame.

        Args:
            clip (torch.Tensor): (T, 3, H, W) float32 in [0, 1].
            size (HW): (out_h, out_w) of the output frames.
            clip_index (int): index of the clip in the video (unused: the method draws no noise).

        Returns:
            torch.Tensor: (T, 3, out_h, out_w) float32 in [0, 1] on the CPU.
        """
        if self.device.type == "cpu":
            return resize_cv2(clip, size, cv2.INTER_CUBIC).clamp_(0.0, 1.0)
        out = F.interpolate(clip.to(self.device), size=size, mode="bicubic", align_corners=False)
        return out.clamp_(0.0, 1.0).cpu()

    def describe(self) -> dict:
        """Stats fields of the method (see `Upscaler.describe`).

        Returns:
            dict: NOT_APPLICABLE's fields, all None.
        """
        return dict(NOT_APPLICABLE)


@dataclass(frozen=True)
class Lanczos:
    """Lanczos interpolation over 8×8 neighbours (OpenCV `INTER_LANCZOS4`), on the CPU whatever the device.

    Each axis is scaled on its own, so a requested size with another aspect ratio stretches the frame.
    """

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    name: str = "lanczos"
    clip_frames: int = 1
    clip_overlap: int = 0

    def upscale_clip(self, clip: torch.Tensor, size: HW, clip_index: int) -> torch.Tensor:
        """Upscale a clip frame by frame.

        Args:
            clip (torch.Tensor): (T, 3, H, W) float32 in [0, 1].
            size (HW): (out_h, out_w) of the output frames.
            clip_index (int): index of the clip in the video (unused: the method draws no noise).

        Returns:
            torch.Tensor: (T, 3, out_h, out_w) float32 in [0, 1] on the CPU.
        """
        return resize_cv2(clip, size, cv2.INTER_LANCZOS4).clamp_(0.0, 1.0)

    def describe(self) -> dict:
        """Stats fields of the method (see `Upscaler.describe`).

        Returns:
            dict: NOT_APPLICABLE's fields, all None.
        """
        return dict(NOT_APPLICABLE)

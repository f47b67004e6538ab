"""Consistency with the input: back-projection of the upscaled frames onto the LR frames they came from.

An upscaled frame, downscaled again the way the evaluation and most cameras make low-resolution video
(antialiased bicubic), should give back the input. A model's output drifts from that, mostly below the input's
Nyquist frequency (local brightness and colour, soft edges). One back-projection step adds the bicubic
upsample of what is missing, `out += w · up(lr - down(out))`; `ITERATIONS` steps converge closely. On clean
input this gains 0.15-0.5 dB PSNR-Y over the model alone (docs/RESULTS.md); on compressed input it puts the
compression artefacts back, so the weight w fades to 0 with the input's degradation strength
(`weight_for`).
"""

from __future__ import annotations

import time

import cv2
import torch
import torch.nn.functional as F

from patchvsr.methods.classical import resize_cv2
from patchvsr.sizes import HW

ITERATIONS = 2
FADE = 0.5  # the degradation strength at which back-projection is off (about H.264 CRF 15; CRF 30 is ~0.7)


def weight_for(strength: float | None) -> float:
    """The back-projection weight for an input of this degradation strength.

    Args:
        strength (float, *optional*): degradation strength in [0, 1] (None or 0: clean).

    Returns:
        float: weight in [0, 1]: 1 for clean input, falling linearly to 0 at strength FADE and above.
    """
    return max(0.0, 1.0 - (strength or 0.0) / FADE)


def back_project(frames: torch.Tensor, lr: torch.Tensor, weight: float = 1.0,
                 iterations: int = ITERATIONS) -> torch.Tensor:
    """Make `frames` consistent with `lr`.

    Args:
        frames (torch.Tensor): (T, 3, H, W) float in [0, 1], the upscaled clip.
        lr (torch.Tensor): (T, 3, h, w) float in [0, 1], the input clip it was made from.
        weight (float, *optional*, defaults to 1.0): in [0, 1], how much of each correction to apply (0 returns
            `frames` unchanged).
        iterations (int, *optional*, defaults to ITERATIONS): back-projection steps (< 1 returns `frames`).

    Returns:
        torch.Tensor: (T, 3, H, W) float32 in [0, 1], on `frames`' device.
    """
    if weight <= 0.0 or iterations < 1:
        return frames
    size, lr_size = frames.shape[-2:], lr.shape[-2:]
    lr = lr.to(frames.device, torch.float32)
    out = frames.float().clone()
    for _ in range(iterations):
        missing = lr - F.interpolate(out, size=lr_size, mode="bicubic", antialias=True, align_corners=False)
        out = out.add_(_upsample(missing, size), alpha=weight).clamp_(0, 1)
    return out


def estimate_seconds(size: HW, input_size: HW, count: int) -> float:
    """Seconds `back_project` takes on this machine for `count` frames of `size` made from `input_size` ones
    (CPU; one frame is timed and multiplied).

    Args:
        size (HW): (H, W) of the upscaled frames.
        input_size (HW): (h, w) of the input frames.
        count (int): frames, >= 0.

    Returns:
        float: seconds.
    """
    if count <= 0:
        return 0.0
    frame, lr = torch.rand(1, 3, *size), torch.rand(1, 3, *input_size)
    started = time.perf_counter()
    back_project(frame, lr)
    return count * (time.perf_counter() - started)


def _upsample(x: torch.Tensor, size: HW) -> torch.Tensor:
    """Bicubic upsampling (a = -0.75, half-pixel centres): OpenCV on the CPU (about 2.5x faster than PyTorch
    there), PyTorch elsewhere; the two agree within 1e-6."""
    if x.device.type == "cpu":
        return resize_cv2(x, size, cv2.INTER_CUBIC)
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False)

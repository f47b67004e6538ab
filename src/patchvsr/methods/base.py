"""The one interface every upscaling method implements, classical or diffusion.

The clip loop in `patchvsr.api` only knows this protocol: it feeds clips of LR frames and receives clips of
HR frames, so bicubic, the tiny PatchVSR model and a large Wan backend share the reader, the temporal
cross-fade, resume and the writer.
"""

from __future__ import annotations

from typing import Protocol

import torch

from patchvsr.sizes import HW


class Upscaler(Protocol):
    """A method that maps an LR clip to an HR clip.

    Attributes:
        name: short name written into `--stats` (`"bicubic"`, `"tiny"`, ...).
        clip_frames: frames processed together (1 for per-frame methods).
        clip_overlap: frames shared by consecutive clips; the clip loop cross-fades them (0 for per-frame).

    An upscaler that can tell how far it is inside a clip (a diffusion model: windows done of the clip's
    windows) sets `reports_progress = True` and takes `progress`, a callable given the fraction of the clip
    done in [0, 1], as a keyword of `upscale_clip`; the clip loop turns it into frames for the progress bar.
    """

    name: str
    clip_frames: int
    clip_overlap: int

    def upscale_clip(self, clip: torch.Tensor, size: HW, clip_index: int) -> torch.Tensor:
        """Upscale one clip of LR frames to `size`.

        Must be deterministic for a given `clip_index` (seeds derive from it), so a resumed run reproduces an
        uninterrupted one.

        Args:
            clip (torch.Tensor): (T, 3, H, W) float32 in [0, 1] on the CPU, the LR frames.
            size (HW): (out_h, out_w) of the output frames.
            clip_index (int): index of the clip in the video, from 0.

        Returns:
            torch.Tensor: (T, 3, out_h, out_w) float32 in [0, 1] on the CPU.
        """
        ...

    def describe(self) -> dict:
        """Stats fields that depend on the method: `windows_per_clip`, `steps`, `fusion` (None if n/a).

        Returns:
            dict: field name -> value, None where the field does not apply to the method.
        """
        ...

"""Seam score: how visible a plan's primary seams are in an output frame (1.0 = invisible).

score = mean |second difference| across the primary seam lines / the same mean on all other lines.

The second difference across columns at x is f(x-1) - 2 f(x) + f(x+1); a seam between columns x-1 and x is
measured at both x-1 and x, horizontally and vertically alike. A hard step of height d at a seam adds about
d to the numerator, so pasted windows score >> 1 on textured content, while a seamless blend scores ~1.
"""

from __future__ import annotations

import numpy as np
import torch

from patchvsr.tiling.plan import WindowPlan, canvas_scale


def seam_score(frame: torch.Tensor | np.ndarray, plan: WindowPlan) -> float:
    """Seam visibility of `frame` for the primary seams of `plan`; 1.0 when the plan has no seam.

    Args:
        frame (torch.Tensor or np.ndarray): (..., s*H, s*W) any real dtype and range (e.g. (3, H, W) RGB in
            [0, 1], or channels-first uint8), where (H, W) is the plan's canvas and s >= 1 an integer (s > 1:
            pixel frame of a latent-space plan). Leading axes (channels, frames) are pooled.
        plan (WindowPlan): the plan whose primary seams are measured.

    Returns:
        float: >= 0; about 1 for invisible seams, >> 1 for visible ones.

    Raises:
        ValueError: if the frame is no integer multiple of the plan's canvas.
    """
    image = torch.as_tensor(frame).double()
    scale = canvas_scale(plan, image.shape[-2:])
    seam_rows, seam_cols = ([scale * p for p in pos] for pos in plan.seams())
    if not seam_rows and not seam_cols:
        return 1.0
    on_rows, off_rows = _split_lines(image.diff(n=2, dim=-2), seam_rows)
    on_cols, off_cols = _split_lines(image.diff(n=2, dim=-1).transpose(-1, -2), seam_cols)
    seam = torch.cat([on_rows, on_cols]).abs()
    other = torch.cat([off_rows, off_cols]).abs()
    eps = 1e-12
    return float((seam.mean() + eps) / (other.mean() + eps)) if other.numel() else 1.0


def _split_lines(second_diff: torch.Tensor, seams: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Values of a second difference along dim -2 (line k is centred on line k+1 of the frame) on seam
    lines (centres seam-1 and seam of each seam) and on all other lines, each flattened to 1-D."""
    lines = second_diff.shape[-2]
    on_seam = torch.zeros(lines, dtype=torch.bool)
    for seam in seams:
        for centre in (seam - 1, seam):
            if 1 <= centre <= lines:
                on_seam[centre - 1] = True
    lines_first = second_diff.movedim(-2, 0)
    return lines_first[on_seam].reshape(-1), lines_first[~on_seam].reshape(-1)

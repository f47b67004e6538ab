"""Tiling: window plans, weight maps, fused velocities, global guidance and seam scores.

Knows nothing of models: it drives any `denoise(windows, t, batch) -> velocity` callable (see `fusion`).
Temporal clips (split a frame stream, cross-fade the overlaps) live in `patchvsr.tiling.temporal`.
"""

from patchvsr.tiling.fusion import Denoise, FusedVelocity, WindowBatch
from patchvsr.tiling.guidance import clipped_boxes, crop_boxes, global_frame, position_masks
from patchvsr.tiling.plan import FUSION_MODES, WINDOW_KINDS, Window, WindowPlan, make_plan, mirror_index
from patchvsr.tiling.seams import seam_score
from patchvsr.tiling.temporal import split_clips
from patchvsr.tiling.weights import PlanWeights, hann_bump, plan_weights

__all__ = [
    "FUSION_MODES",
    "WINDOW_KINDS",
    "Denoise",
    "FusedVelocity",
    "PlanWeights",
    "Window",
    "WindowBatch",
    "WindowPlan",
    "clipped_boxes",
    "crop_boxes",
    "global_frame",
    "hann_bump",
    "make_plan",
    "mirror_index",
    "plan_weights",
    "position_masks",
    "seam_score",
    "split_clips",
]

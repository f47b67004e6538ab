"""Networks: the base video DiT, the PatchVSR dual-branch adapter, LoRA and the condition embedder.

Typical use (the tiling engine calls `velocity` for every batch of windows)::

    model = PatchVSRModel.from_pretrained(folder)          # or PatchVSRModel.from_preset("tiny")
    with torch.no_grad():
        v = model.velocity(z, t, WindowConditions(lr_up, global_input, scale, crop_box, noise_level, keys))
    model.cache.clear()                                    # between clips
"""

from patchvsr.models.adapter import BranchCache, BranchFeatures, PatchVSRAdapter
from patchvsr.models.conditions import ConditionEmbedder, WindowConditions, full_frame_conditions
from patchvsr.models.dit import DIT_PRESETS, BaseInjection, VideoDiT
from patchvsr.models.patchvsr import PRESETS, PatchVSRConfig, PatchVSRModel

__all__ = [
    "BaseInjection", "BranchCache", "BranchFeatures", "ConditionEmbedder", "DIT_PRESETS", "PRESETS",
    "PatchVSRAdapter", "PatchVSRConfig", "PatchVSRModel", "VideoDiT", "WindowConditions", "full_frame_conditions",
]

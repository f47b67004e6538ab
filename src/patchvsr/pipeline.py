"""`PatchVSRPipeline`: the PatchVSR upscaler as a diffusers `DiffusionPipeline`, for people who live in diffusers.

    pipe = PatchVSRPipeline.from_model("tiny")                      # the embedded model (or a trained folder)
    pipe.save_pretrained("patchvsr-tiny")
    pipe = PatchVSRPipeline.from_pretrained("patchvsr-tiny")        # the same pipeline back, or, running
                                                                    # the folder's two-line pipeline.py:
    pipe = DiffusionPipeline.from_pretrained("patchvsr-tiny", trust_remote_code=True)
    frames = pipe(frames, scale=4).frames                           # a list of PIL images or (T, H, W, 3) uint8

The saved folder is a diffusers pipeline: `model_index.json` names the pipeline as `["pipeline",
"PatchVSRPipeline"]`, with a two-line `pipeline.py` beside it that imports this class (diffusers loads a
pipeline that is not part of diffusers from such a file, after `trust_remote_code=True`: the file is
those two lines, which import the installed patchvsr), and the model in `model/` (a `PatchVSRModel`
folder). The call runs the same clip loop as `patchvsr upscale` (clips, overlaps, cross-fades, windows), so
a pipeline and the CLI give the same frames for the same options.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.utils import BaseOutput
from einops import rearrange
from PIL import Image

from patchvsr.api import upscale_stream
from patchvsr.errors import OptionError
from patchvsr.io.target import output_size
from patchvsr.methods.patchvsr import SHIPPED, PatchVSRUpscaler, SamplerOptions, load_trained
from patchvsr.models.patchvsr import PatchVSRModel
from patchvsr.sizes import WH
from patchvsr.train.config import RESIDUAL_STD

SHIM = "from patchvsr.pipeline import PatchVSRPipeline  # noqa: F401 - the class diffusers loads for this folder\n"
OUTPUT_TYPES = ("pil", "np", "pt")


@dataclass
class PatchVSRPipelineOutput(BaseOutput):
    """frames: a list of PIL images ("pil"), a (T, H, W, 3) uint8 array ("np") or a (T, 3, H, W) float tensor
    in [0, 1] ("pt")."""

    frames: list[Image.Image] | np.ndarray | torch.Tensor


class PatchVSRPipeline(DiffusionPipeline):
    """Video super-resolution with a PatchVSR model: `pipe(frames, scale=4)` (see the module docstring).

    Args:
        model: the adapted video DiT (`PatchVSRModel`).
        residual_std: the scale of the residual it was trained to predict (its training.json).
    """

    model_cpu_offload_seq = "model"

    def __init__(self, model: PatchVSRModel, residual_std: float = RESIDUAL_STD):
        super().__init__()
        self.register_modules(model=model)
        self.register_to_config(residual_std=float(residual_std))
        self._upscalers: dict[tuple, PatchVSRUpscaler] = {}  # by (options, device): each with its own copy

    @classmethod
    def from_model(cls, model: str | Path = "tiny") -> "PatchVSRPipeline":
        """The pipeline of a shipped model name ("tiny") or of a trained model folder.

        Args:
            model (str or Path, *optional*, defaults to "tiny"): a shipped model name or a trained model folder.

        Returns:
            PatchVSRPipeline: the pipeline, its model on the CPU.

        Raises:
            InputError: for a folder that is not a trained model's.
        """
        shipped = SHIPPED / str(model)
        return cls(*load_trained(shipped if (shipped / "config.json").is_file() else model))

    @classmethod
    def from_pretrained(cls, folder: str | Path, torch_dtype: torch.dtype | None = None) -> "PatchVSRPipeline":
        """Load a folder written by `save_pretrained` without running its `pipeline.py` (this is the class it
        names); `DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)` gives the same pipeline.

        Args:
            folder (str or Path): a folder written by `save_pretrained`.
            torch_dtype (torch.dtype, *optional*): the dtype to load the model's weights in (None: as saved).

        Returns:
            PatchVSRPipeline: the pipeline.

        Raises:
            OptionError: for a folder without model_index.json, or one naming another pipeline class.
        """
        folder = Path(folder)
        index = folder / "model_index.json"
        if not index.is_file():
            raise OptionError(f"{folder}: not a saved pipeline (no model_index.json)")
        config = json.loads(index.read_text())
        if config.get("_class_name") != ["pipeline", cls.__name__]:
            raise OptionError(f"{folder}: a pipeline of another class ({config.get('_class_name')})")
        model = PatchVSRModel.from_pretrained(folder / "model", torch_dtype=torch_dtype)
        return cls(model, config.get("residual_std", RESIDUAL_STD))

    def save_pretrained(self, save_directory: str | Path, **kwargs) -> None:
        """Write the diffusers folder: model_index.json (the pipeline named by its `pipeline.py`), model/.

        Args:
            save_directory (str or Path): the folder to write.
            kwargs: passed on to `DiffusionPipeline.save_pretrained`.
        """
        super().save_pretrained(save_directory, **kwargs)
        index = Path(save_directory) / "model_index.json"
        config = {**json.loads(index.read_text()), "_class_name": ["pipeline", type(self).__name__]}
        index.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        (Path(save_directory) / "pipeline.py").write_text(SHIM)

    @torch.no_grad()
    def __call__(self, frames, scale: float | None = None, size: WH | str | None = None,
                 output_type: str = "pil", **options) -> PatchVSRPipelineOutput:
        """Upscale a clip.

        Args:
            frames (list, np.ndarray or torch.Tensor): a list of PIL images or (H, W, 3) uint8 arrays, a
                (T, H, W, 3) uint8 array, or a (T, 3, H, W) float tensor in [0, 1] (quantised to 8 bits, as
                video is); all frames of one size.
            scale (float, *optional*): factor K > 1 for both axes (default 4).
            size (WH or str, *optional*): (width, height) or "WxH" instead of `scale`.
            output_type (str, *optional*, defaults to "pil"): "pil", "np" or "pt" (see `PatchVSRPipelineOutput`).
            options: sampler options (`patchvsr.options.MODEL_OPTIONS`: steps, fusion, seed, ...).

        Returns:
            PatchVSRPipelineOutput: the upscaled frames, one per input frame: PIL images, a (T, out_h, out_w, 3)
            uint8 array, or a (T, 3, out_h, out_w) float32 tensor in [0, 1].

        Raises:
            OptionError: for an unknown output type, frames of another kind or of mixed sizes, or bad options.
        """
        if output_type not in OUTPUT_TYPES:
            raise OptionError(f"output_type must be one of {', '.join(OUTPUT_TYPES)}, got {output_type!r}")
        pixels = _as_uint8_frames(frames)
        height, width = pixels[0].shape[:2]
        out_w, out_h = output_size(width, height, scale, size)
        upscaler = self._upscaler(SamplerOptions(**{k: v for k, v in options.items() if v is not None}))
        result = np.stack(list(upscale_stream(pixels, upscaler, (out_h, out_w))))
        if output_type == "np":
            return PatchVSRPipelineOutput(result)
        if output_type == "pt":
            return PatchVSRPipelineOutput(rearrange(torch.from_numpy(result), "t h w c -> t c h w").float() / 255)
        return PatchVSRPipelineOutput([Image.fromarray(frame) for frame in result])


    def _upscaler(self, options: SamplerOptions) -> PatchVSRUpscaler:
        """The upscaler for these options on the pipeline's device; it merges LoRA and casts weights for speed,
        so it works on a copy and `self.model` stays as loaded (and saves as loaded)."""
        key = (options, str(self.device))
        if key not in self._upscalers:
            self._upscalers[key] = PatchVSRUpscaler(copy.deepcopy(self.model), self.config.residual_std, options,
                                                    self.device, "pipeline")
        return self._upscalers[key]


def _as_uint8_frames(frames) -> list[np.ndarray]:
    """Any of the accepted inputs -> a list of (H, W, 3) uint8 RGB frames of one size."""
    if isinstance(frames, torch.Tensor):
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise OptionError(f"a tensor clip must be (T, 3, H, W), got {tuple(frames.shape)}")
        levels = frames.detach().float().cpu().mul(255.0).add(0.5).clamp(0, 255).to(torch.uint8)
        return list(rearrange(levels, "t c h w -> t h w c").numpy())
    if isinstance(frames, np.ndarray) and frames.ndim == 4:
        frames = list(frames)
    pixels = [np.asarray(f.convert("RGB")) if isinstance(f, Image.Image) else np.asarray(f) for f in frames]
    if not pixels:
        raise OptionError("no frames given")
    if any(p.dtype != np.uint8 or p.ndim != 3 or p.shape[2] != 3 or p.shape != pixels[0].shape for p in pixels):
        raise OptionError("frames must be RGB images of one size (PIL, or (H, W, 3) uint8 arrays)")
    return pixels

"""`WanUpscaler`: PatchVSR on a Wan base, an `Upscaler` (see `patchvsr.methods.base`) working in latent space.

Per clip of T = 4k + 1 frames (the data flow of docs/design.md, with a real VAE):
1. V_up = bicubic(LR clip) on the output canvas, mirror-padded to multiples of 8, encoded to latents
   (C, k + 1, H/8, W/8); G = V_up resized to the window and encoded, the global guidance;
2. a window plan on the latent canvas (windows of `window / 8` latent pixels); each window's conditions are
   crops of the V_up latent (`plan.crop`), G with its position mask, scale and crop box;
3. the rectified-flow Euler loop over the fused window velocities (`FusedVelocity`), branch features cached
   per window; fidelity mode (`steps=1`) is one step from z = 0 at t = 1, detail mode starts from noise
   seeded by (seed, clip index), or from the V_up latent noised to t0 < 1;
4. decode, crop the padding, back to [0, 1].
Memory knobs: window, batch (windows per call), dtype (weights in bf16/fp16/fp32), VAE tile, offload
(transformer and VAE take turns on the device).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from diffusers import AutoencoderKLWan, WanTransformer3DModel
from einops import rearrange

from patchvsr.backends.wan_model import WanPatchVSR, base_folder, read_info
from patchvsr.backends.wan_vae import WanLatents
from patchvsr.devices import compute_dtype
from patchvsr.errors import OptionError
from patchvsr.methods.patchvsr import (DTYPES, SamplerOptions, batch_size, bicubic_canvas, sampler_stats,
                                      start_latent)
from patchvsr.models.conditions import WindowConditions
from patchvsr.sampling import sample_euler
from patchvsr.sizes import HW
from patchvsr.stabilize import compose
from patchvsr.tiling import FusedVelocity, WindowBatch, WindowPlan, global_frame, make_plan
from patchvsr.tiling.plan import mirror_index


class WanUpscaler:
    """model: the adapted Wan DiT; latents: its VAE; options: the shared sampler options; offload: keep only
    the part in use (transformer or VAE) on `device`, the other on the CPU."""

    def __init__(self, model: WanPatchVSR, latents: WanLatents, options: SamplerOptions, device: torch.device,
                 name: str = "wan", offload: bool = False):
        self.window = options.window or model.geometry["window"]
        self.clip_frames = options.clip_frames or model.geometry["clip_frames"]
        unit = latents.spatial * 2 * model.base.config.patch_size[1]  # global tokens: twice the token patch
        if self.window % unit:
            raise OptionError(f"--window must be a multiple of {unit} px for this base, got {self.window}")
        latents.check_frames(self.clip_frames)
        self.clip_overlap = self.clip_frames // 4  # cross-faded by the clip loop
        model.merge_lora()
        self.model, self.latents, self.options = model.eval(), latents, options
        self.device, self.name, self.offload = device, name, offload
        weights = {value: key for key, value in DTYPES.items()}.get(model.base.dtype, str(model.base.dtype))
        chosen, reason = compute_dtype(options.dtype, device)
        self.dtype = (weights, reason if weights == chosen else f"the base's weights are {weights}")
        if not offload:
            self.model.to(device)
            latents.vae.to(device)
        self._last_plan: WindowPlan | None = None

    def describe(self) -> dict:
        """Stats fields of the method (see `Upscaler.describe` and `sampler_stats`).

        Returns:
            dict: windows_per_clip (of the last clip's latent plan, None before the first), steps, fusion,
            temporal_radius, dtype, dtype_reason.
        """
        return sampler_stats(self._last_plan, self.options, self.dtype)

    @torch.no_grad()
    def upscale_clip(self, clip: torch.Tensor, size: HW, clip_index: int) -> torch.Tensor:
        """Upscale one clip in latent space (see the module docstring).

        Args:
            clip (torch.Tensor): (T, 3, H, W) float32 in [0, 1], the LR frames, T = 4k + 1.
            size (HW): (out_h, out_w) of the output frames.
            clip_index (int): index of the clip in the video (>= 0); seeds the noise of the detail mode.

        Returns:
            torch.Tensor: (T, 3, out_h, out_w) float32 in [0, 1] on the CPU.
        """
        up, scale = bicubic_canvas(clip.to(self.device), size)                  # (3, T, oh, ow) in [-1, 1]
        with self._resident(self.latents.vae):
            latent_up = self.latents.encode(pad_to_multiple(up, self.latents.spatial)[None])[0]   # (C, t, h, w)
            guide = self.latents.encode(global_frame(up, (self.window, self.window))[None])[0]     # (C, t, g, g)
        side = self.window // self.latents.spatial
        plan = self._last_plan = make_plan(tuple(latent_up.shape[-2:]), (side, side), self.options.fusion_mode)
        with self._resident(self.model):
            self.model.cache.clear()
            fused = FusedVelocity(plan, self._denoiser(plan, latent_up, guide),
                                  batch_size(self.options, self.device), scale)
            start = start_latent(self.options, latent_up, clip_index, clean=latent_up)
            z0 = sample_euler(fused, start, self.options.timesteps())
            self.model.cache.clear()
        with self._resident(self.latents.vae):
            hr = self.latents.decode(z0[None])[0][:, :, : size[0], : size[1]]     # (3, T, oh, ow) in [-1, 1]
        up, hr = (rearrange(x, "c t h w -> t c h w").float() for x in (up, hr))
        return compose(up, hr - up, self.options.temporal_radius)

    def _denoiser(self, plan: WindowPlan, latent_up: torch.Tensor, guide: torch.Tensor):
        """The window-level `denoise(windows, t, batch)` for this clip's latent canvas."""

        def denoise(windows: torch.Tensor, t: float, batch: WindowBatch) -> torch.Tensor:
            cond = WindowConditions.build(plan.crop(latent_up, batch.indices), guide, batch.masks, batch.scale,
                                          batch.crop_boxes, noise_level=0.0, keys=batch.indices)
            return self.model.velocity(windows, t, cond).float()

        return denoise

    @contextlib.contextmanager
    def _resident(self, module: torch.nn.Module):
        """With offload: `module` on the device for the block, back on the CPU after it."""
        if self.offload:
            module.to(self.device)
        try:
            yield
        finally:
            if self.offload:
                module.to("cpu")


def pad_to_multiple(video: torch.Tensor, multiple: int) -> torch.Tensor:
    """Mirror-pad a video bottom/right to the next multiples of `multiple`.

    Args:
        video (torch.Tensor): (C, T, H, W), any dtype and device.
        multiple (int): the multiple, e.g. the VAE's spatial factor 8.

    Returns:
        torch.Tensor: (C, T, H', W'), H' and W' the next multiples of `multiple` (>= H, W), same dtype.
    """
    height, width = video.shape[-2:]
    rows = mirror_index(torch.arange(-(-height // multiple) * multiple, device=video.device), height)
    cols = mirror_index(torch.arange(-(-width // multiple) * multiple, device=video.device), width)
    return video.index_select(-2, rows).index_select(-1, cols)


def is_wan_adapter(path: str | Path) -> bool:
    """True for a folder written by `WanPatchVSR.save_adapter` (it holds patchvsr_wan.json).

    Args:
        path (str | Path): any path.

    Returns:
        bool: whether `path` is such a folder.
    """
    return (Path(path) / "patchvsr_wan.json").is_file()


def load_wan_upscaler(path: str | Path, device: torch.device, name: str | None = None, offload: bool = False,
                      vae_tile: int | None = 256, **options) -> WanUpscaler:
    """A WanUpscaler from an adapter folder; its base is loaded from the folder it names (local files only).

    Args:
        path (str | Path): the adapter folder.
        device (torch.device): where the model runs.
        name (str, optional): the method's name in the stats; None: the folder's name.
        offload (bool, optional): transformer and VAE take turns on the device (see `WanUpscaler`).
        vae_tile (int, optional): VAE tile side in pixels, None for untiled (see `WanLatents`).
        **options: SamplerOptions fields (None = default); dtype sets the weights' dtype (bf16 halves the memory
            of fp32; auto: bf16 where the device runs it natively; the VAE stays float32).

    Returns:
        WanUpscaler: the upscaler.

    Raises:
        InputError: not an adapter folder, or its base is missing.
        OptionError: an option value out of range, a bad VAE tile, window or clip length.
    """
    path = Path(path)
    sampler = SamplerOptions(**{key: value for key, value in options.items() if value is not None})
    base = base_folder(path, read_info(path))
    dtype, _ = compute_dtype(sampler.dtype, device)
    transformer = WanTransformer3DModel.from_pretrained(base / "transformer", torch_dtype=DTYPES[dtype])
    latents = WanLatents(AutoencoderKLWan.from_pretrained(base / "vae", torch_dtype=torch.float32), vae_tile)
    model = WanPatchVSR.load(path, base=transformer)
    return WanUpscaler(model, latents, sampler, device, name or path.name, offload)

"""`WanPatchVSR`: a frozen Wan base + LoRA (peft) + the PatchVSR adapter behind one call, `velocity(z, t, cond)`.

The forward pass is the base's own, step by step, with the adapter's three entry points: the condition
embedding added to the timestep embedding, the patch-branch residual added after every block, and K_g / V_g
for the decoupled cross-attention (`DecoupledCrossAttnProcessor`, installed on every block's `attn2`).
Time convention (`patchvsr.sampling`): t in [0, 1] is Wan's flow-matching sigma, the base sees t · 1000.

Saved adapter folder (the base stays where the user keeps it; nothing is downloaded):
    patchvsr_wan.json                      format, base folder, LoRA rank/alpha, native window and clip length
    config.json, diffusion_pytorch_model.safetensors     the adapter (`WanPatchVSRAdapter`)
    lora.safetensors                       LoRA weights of the base (absent without LoRA)
    model_card.md
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import torch
from diffusers import WanTransformer3DModel
from einops import rearrange
from peft import LoraConfig
from safetensors.torch import load_file, save_file
from torch import nn

from patchvsr.backends.wan_adapter import DecoupledCrossAttnProcessor, GlobalSlot, WanPatchVSRAdapter
from patchvsr.errors import InputError
from patchvsr.models import lora
from patchvsr.models.adapter import BranchCache, BranchFeatures
from patchvsr.models.conditions import WindowConditions

FORMAT = "patchvsr-wan"
FORMAT_VERSION = 1
LORA_TARGETS = r"blocks\.\d+\.(attn1\.(to_q|to_k|to_v|to_out\.0)|attn2\.(to_q|to_out\.0)|ffn\.net\.(0\.proj|2))"


class WanPatchVSR(nn.Module):
    """base: a `WanTransformer3DModel` (frozen; LoRA layers are added in place); adapter: its PatchVSR adapter.

    geometry: {"window": side in pixels, "clip_frames": frames per clip} the adapter is trained for.
    """

    def __init__(self, base: WanTransformer3DModel, adapter: WanPatchVSRAdapter, lora_rank: int = 16,
                 lora_alpha: float = 16.0, geometry: dict | None = None):
        super().__init__()
        base.requires_grad_(False)
        self.base, self.adapter = base, adapter
        self.lora_rank, self.lora_alpha = lora_rank, lora_alpha
        self.geometry = dict(geometry or {"window": 512, "clip_frames": 17})
        if lora_rank:
            config = LoraConfig(r=lora_rank, lora_alpha=lora_alpha, target_modules=LORA_TARGETS, init_lora_weights=True)
            base.add_adapter(config, adapter_name=lora.ADAPTER_NAME)
        self.slot = GlobalSlot()
        for index, block in enumerate(base.blocks):
            block.attn2.set_processor(DecoupledCrossAttnProcessor(self.slot, index))
        self.cache = BranchCache()

    @classmethod
    def from_base(cls, base: WanTransformer3DModel, prompt_embeds: torch.Tensor, seed: int = 0, lora_rank: int = 16,
                  lora_alpha: float = 16.0, geometry: dict | None = None, **options) -> WanPatchVSR:
        """A fresh adapter (weights from `seed`, see `WanPatchVSRAdapter.from_transformer`) on `base`.

        Args:
            base (WanTransformer3DModel): the Wan DiT, frozen and given LoRA layers in place.
            prompt_embeds (torch.Tensor): (L, text_dim) float, the fixed prompt's text-encoder states.
            seed (int, optional): seed of the adapter (`seed`) and of the LoRA weights (`seed + 1`).
            lora_rank (int, optional): LoRA rank on the base; 0: no LoRA.
            lora_alpha (float, optional): LoRA alpha.
            geometry (dict, optional): {"window": px, "clip_frames": frames}; None: 512 px, 17 frames.
            **options: adapter options (see `WanPatchVSRAdapter.from_transformer`).

        Returns:
            WanPatchVSR: the base with its new adapter.
        """
        adapter = WanPatchVSRAdapter.from_transformer(base, prompt_embeds, seed=seed, **options)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1)
            return cls(base, adapter, lora_rank, lora_alpha, geometry)

    # ----- the forward pass ---------------------------------------------------------------------------------
    def velocity(self, z: torch.Tensor, t: torch.Tensor | float, cond: WindowConditions) -> torch.Tensor:
        """The flow velocity of N windows (the same as calling the module).

        Args:
            z (torch.Tensor): (N, C, t, h, w) noisy window latents z_t.
            t (torch.Tensor | float): (N,) or a scalar, the flow time in [0, 1].
            cond (WindowConditions): lr_up = the windows' latent of V_up (N, C, t, h, w), global_input = latent G
                + mask (N, C + 1, t, gh, gw), scale, crop box, noise level (and cache keys at inference).

        Returns:
            torch.Tensor: v = ε - z0, (N, C, t, h, w) in z's dtype.
        """
        return self(z, t, cond)

    def forward(self, z: torch.Tensor, t: torch.Tensor | float, cond: WindowConditions) -> torch.Tensor:
        """The forward pass behind `velocity`.

        Args:
            z (torch.Tensor): (N, C, t, h, w) noisy window latents z_t.
            t (torch.Tensor | float): (N,) or a scalar, the flow time in [0, 1].
            cond (WindowConditions): the windows' conditions (see `velocity`).

        Returns:
            torch.Tensor: v = ε - z0, (N, C, t, h, w) in z's dtype.
        """
        n, dtype = z.shape[0], self.base.dtype
        t = torch.as_tensor(t, dtype=torch.float32, device=z.device).reshape(-1).expand(n)
        cond_emb = self.adapter.condition_embedder(cond.scale, cond.crop_box, cond.noise_level)   # (N, D)
        temb, timestep_proj = self.time_embedding(t, cond_emb)                                   # (N, D), (N, 6, D)
        context = self.text_context(n)                                                            # (N, Lc, D)
        features = self.branch_features(cond, context, cond_emb)
        # 1. Tokens of the windows: (N, t' h' w', D) with 3-D rotary positions
        rope = self.base.rope(z)
        tokens = rearrange(self.base.patch_embedding(z.to(dtype)), "n d t h w -> n (t h w) d").contiguous()
        # 2. Base blocks; global K_g/V_g read by attn2; the patch branch's residual after every block
        key_values = self.adapter.global_key_values(features.global_tokens)
        with self._global(key_values):
            for block, residual in zip(self.base.blocks, self.adapter.residuals(features.patch_states)):
                tokens = block(tokens, context, timestep_proj, rope) + residual
        # 3. Output modulation, projection, tokens back to latent pixels
        return self._unpatchify(self._output(tokens, temb), z.shape).to(z.dtype)

    def time_embedding(self, t: torch.Tensor, cond_emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The base's timestep embedding (of t · 1000) plus the adapter's condition embedding.

        Args:
            t (torch.Tensor): (N,) float32, the flow time in [0, 1].
            cond_emb (torch.Tensor): (N, D) the condition embedding.

        Returns:
            tuple[torch.Tensor, torch.Tensor]: temb (N, D) and the block modulation (N, 6, D), in the base's dtype.
        """
        embedder = self.base.condition_embedder
        frequencies = embedder.timesteps_proj(t * 1000.0)
        time_dtype = next(embedder.time_embedder.parameters()).dtype
        temb = embedder.time_embedder(frequencies.to(time_dtype)) + cond_emb.to(time_dtype)
        temb = temb.to(self.base.dtype)
        return temb, embedder.time_proj(embedder.act_fn(temb)).unflatten(1, (6, -1))

    def text_context(self, n: int) -> torch.Tensor:
        """The fixed prompt through the base's text projection.

        Args:
            n (int): the batch size N.

        Returns:
            torch.Tensor: (N, L, D) in the base's dtype, L the prompt length.
        """
        prompt = self.adapter.prompt_embeds.to(self.base.dtype)
        return self.base.condition_embedder.text_embedder(prompt.expand(n, *prompt.shape))

    def branch_features(self, cond: WindowConditions, context: torch.Tensor,
                        cond_emb: torch.Tensor) -> BranchFeatures:
        """Patch-branch states and global tokens (t-independent: their blocks run at the noise level);
        from the cache when `cond.keys` is given (inference).

        Args:
            cond (WindowConditions): the N windows' conditions.
            context (torch.Tensor): (N, Lc, D) the projected fixed prompt.
            cond_emb (torch.Tensor): (N, D) the condition embedding.

        Returns:
            BranchFeatures: patch_states patch_depth x (N, L, D); global_tokens (N, Lg, D) or None.
        """
        dtype = self.base.dtype

        def compute(rows: list[int]) -> BranchFeatures:
            _, proj = self.time_embedding(cond.noise_level[rows].float(), cond_emb[rows])
            states = self.adapter.patch_states(cond.lr_up[rows].to(dtype), context[rows], proj)
            tokens = None
            if cond.global_input is not None:
                tokens = self.adapter.global_tokens(cond.global_input[rows].to(dtype), context[rows], proj)
            return BranchFeatures(states, tokens)

        if cond.keys is None:
            return compute(list(range(len(cond))))
        return self.cache.fetch(cond.keys, compute)

    def _output(self, tokens: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        """(N, L, D) -> (N, L, p_t·p_h·p_w·C) with the base's final adaLN and projection."""
        shift, scale = (self.base.scale_shift_table + temb[:, None]).chunk(2, dim=1)
        tokens = (self.base.norm_out(tokens.float()) * (1 + scale) + shift).type_as(tokens)
        return self.base.proj_out(tokens)

    def _unpatchify(self, tokens: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        (p_t, p_h, p_w), (_, _, frames, height, width) = self.base.config.patch_size, shape
        return rearrange(tokens, "n (t h w) (pt ph pw c) -> n c (t pt) (h ph) (w pw)", t=frames // p_t,
                         h=height // p_h, w=width // p_w, pt=p_t, ph=p_h, pw=p_w)

    @contextlib.contextmanager
    def _global(self, key_values):
        self.slot.kv = key_values
        try:
            yield
        finally:
            self.slot.kv = None

    # ----- training, LoRA, saving ---------------------------------------------------------------------------
    def trainable_parameters(self) -> list[nn.Parameter]:
        """Adapter + LoRA parameters (the base itself stays frozen).

        Returns:
            list[nn.Parameter]: the parameters that require grad.
        """
        return [parameter for parameter in self.parameters() if parameter.requires_grad]

    def merge_lora(self) -> None:
        """Fold the LoRA weights into the base for inference (no-op without LoRA)."""
        lora.merge_lora(self.base)

    def save_adapter(self, directory: str | Path, base_path: str | Path, card: str = "") -> None:
        """Write the adapter folder (see the module docstring); the base is referenced, not copied.

        Args:
            directory (str | Path): the adapter folder to write.
            base_path (str | Path): the base's diffusers folder, recorded in patchvsr_wan.json.
            card (str, optional): extra text for the model card.
        """
        directory = Path(directory)
        self.adapter.save_pretrained(directory)
        if lora.has_lora(self.base):
            state = {k: v.detach().contiguous().cpu() for k, v in lora.lora_state_dict(self.base).items()}
            save_file(state, directory / "lora.safetensors", metadata={"format": "pt"})
        info = {"format": FORMAT, "format_version": FORMAT_VERSION, "base": str(base_path),
                "lora_rank": self.lora_rank if lora.has_lora(self.base) else 0, "lora_alpha": self.lora_alpha,
                **self.geometry}
        (directory / "patchvsr_wan.json").write_text(json.dumps(info, indent=2) + "\n")
        (directory / "model_card.md").write_text(model_card(self, info, card))

    @classmethod
    def load(cls, directory: str | Path, base: WanTransformer3DModel | None = None,
             dtype: torch.dtype = torch.float32) -> WanPatchVSR:
        """Load an adapter folder onto `base`, or onto `info["base"]/transformer` loaded in `dtype`.

        Args:
            directory (str | Path): the adapter folder (patchvsr_wan.json, the adapter, lora.safetensors).
            base (WanTransformer3DModel, optional): the base to load onto; None: load the folder's base.
            dtype (torch.dtype, optional): the dtype of a base loaded here.

        Returns:
            WanPatchVSR: in eval mode, LoRA not merged.

        Raises:
            InputError: not an adapter folder, or its base is missing.
        """
        directory = Path(directory)
        info = read_info(directory)
        if base is None:
            base = WanTransformer3DModel.from_pretrained(base_folder(directory, info) / "transformer", torch_dtype=dtype)
        adapter = WanPatchVSRAdapter.from_pretrained(directory, torch_dtype=base.dtype)
        geometry = {key: info[key] for key in ("window", "clip_frames")}
        model = cls(base, adapter, info["lora_rank"], info["lora_alpha"], geometry)
        if info["lora_rank"]:
            lora.load_lora_state_dict(model.base, load_file(str(directory / "lora.safetensors")))
        return model.eval()


def read_info(directory: Path) -> dict:
    """patchvsr_wan.json of an adapter folder; InputError if it is not one.

    Args:
        directory (Path): the adapter folder.

    Returns:
        dict: format, format_version, base, lora_rank, lora_alpha, window, clip_frames.

    Raises:
        InputError: the file is missing, unreadable or of another format.
    """
    path = directory / "patchvsr_wan.json"
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"{directory} is not a PatchVSR Wan adapter folder ({path.name}: {err})") from None
    if info.get("format") != FORMAT or info.get("format_version") != FORMAT_VERSION:
        raise InputError(f"{path}: not a {FORMAT} v{FORMAT_VERSION} adapter description")
    return info


def base_folder(directory: Path, info: dict) -> Path:
    """The base's diffusers folder named by the adapter (relative paths are relative to the adapter).

    Args:
        directory (Path): the adapter folder.
        info (dict): its patchvsr_wan.json (see `read_info`).

    Returns:
        Path: the resolved base folder.

    Raises:
        InputError: the folder has no transformer/ and vae/ in diffusers layout.
    """
    folder = (directory / info["base"]).resolve()
    if not (folder / "transformer" / "config.json").is_file() or not (folder / "vae" / "config.json").is_file():
        raise InputError(f"{folder}: the adapter's Wan base is not there (needs transformer/ and vae/ in "
                         "diffusers layout); edit `base` in patchvsr_wan.json if it moved")
    return folder


def model_card(model: WanPatchVSR, info: dict, extra: str = "") -> str:
    """Markdown model card: base, adapter configuration and parameter counts.

    Args:
        model (WanPatchVSR): the model.
        info (dict): its patchvsr_wan.json fields.
        extra (str, optional): text appended at the end.

    Returns:
        str: the card's markdown.
    """
    adapter = sum(p.numel() for p in model.adapter.parameters())
    lora_count = sum(v.numel() for v in lora.lora_state_dict(model.base).values()) if lora.has_lora(model.base) else 0
    lines = ["# PatchVSR adapter for a Wan video DiT", "",
             "Patch-wise video super-resolution (PatchVSR, CVPR 2025) on diffusers' `WanTransformer3DModel`. "
             "Upscale with `patchvsr upscale IN -o OUT --model THIS_FOLDER`.", "",
             f"- base: `{info['base']}` ({model.base.config.num_layers} blocks, "
             f"{model.base.config.num_attention_heads * model.base.config.attention_head_dim} wide)",
             f"- adapter: { {k: v for k, v in model.adapter.config.items() if not k.startswith('_')} }",
             f"- parameters: adapter {adapter:,}, LoRA {lora_count:,} (rank {info['lora_rank']})",
             f"- native window {info['window']} px, clip {info['clip_frames']} frames", ""]
    return "\n".join(lines) + (extra.strip() + "\n" if extra.strip() else "")

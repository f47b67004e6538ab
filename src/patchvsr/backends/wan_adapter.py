"""The PatchVSR adapter for diffusers' `WanTransformer3DModel` (Wan 2.1 text-to-video DiTs, 1.3B and 14B).

Parts (PatchVSR, CVPR 2025; shapes for N windows of latent size (C, t, h, w), D = heads · head_dim):
- patch branch: the base's token embedding and first `patch_depth` blocks, copied (ControlNet's
  `from_transformer`), run on the window's (noise-augmented) latent of the upsampled LR video; block i of the
  base reads branch block i · patch_depth // num_layers through a zero-initialised Linear, added to its output;
- global branch: a token embedding with twice the base's spatial patch over concat(G, M_i) (the whole frame's
  latent at window size + the window's position mask: a quarter of the window's tokens) and `global_depth`
  blocks copied from the base; every base block gets new K_g / V_g projections of its tokens, read by a
  decoupled cross-attention that shares the text cross-attention's queries, through a zero-initialised gate;
- condition embedder (scale, crop box, noise level) added to the timestep embedding, zero at init;
- the fixed prompt: one text-encoder embedding (L, text_dim), computed once and stored as a buffer.
LoRA on the base and the forward pass live in `wan_model`. All new paths start at zero, so the adapted base
computes exactly what the base computes until training moves them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from diffusers import ModelMixin, WanTransformer3DModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed, WanTransformerBlock
from einops import rearrange
from torch import nn

from patchvsr.models.conditions import ConditionEmbedder
from patchvsr.models.layers import zero_init

# base config keys the adapter copies (its blocks must match the base's)
BASE_KEYS = ("in_channels", "patch_size", "num_attention_heads", "attention_head_dim", "text_dim", "ffn_dim",
             "num_layers", "cross_attn_norm", "qk_norm", "eps", "rope_max_seq_len")


class GlobalSlot:
    """K_g / V_g of every base block for the current forward pass (set by the model around the base blocks)."""

    def __init__(self):
        self.kv: Sequence[tuple[torch.Tensor, torch.Tensor]] | None = None


class DecoupledCrossAttnProcessor:
    """Processor of a base block's `attn2`: the text cross-attention, plus an attention of the same queries
    over the global tokens' K_g / V_g (`slot.kv[layer]`, none outside an adapted forward). The output is
    the same as diffusers' `WanAttnProcessor` for a text-to-video block when no global tokens are set."""

    def __init__(self, slot: GlobalSlot, layer: int):
        self.slot, self.layer = slot, layer

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, rotary_emb=None) -> torch.Tensor:
        """Text cross-attention plus the gated attention over the global tokens.

        Args:
            attn: the block's diffusers `attn2` attention module (to_q, to_k, to_v, norms, to_out).
            hidden_states (torch.Tensor): (N, L, D) the windows' tokens (the queries).
            encoder_hidden_states (torch.Tensor): (N, Lc, D) the projected text context.
            attention_mask (torch.Tensor, optional): a mask for the text attention, broadcastable to (N, heads, L, Lc).
            rotary_emb: unused (the cross-attention has no rotary positions).

        Returns:
            torch.Tensor: (N, L, D) in the queries' dtype.
        """
        heads = attn.heads
        query = rearrange(attn.norm_q(attn.to_q(hidden_states)), "n l (h d) -> n h l d", h=heads)
        key = rearrange(attn.norm_k(attn.to_k(encoder_hidden_states)), "n l (h d) -> n h l d", h=heads)
        value = rearrange(attn.to_v(encoder_hidden_states), "n l (h d) -> n h l d", h=heads)
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask)
        if self.slot.kv is not None:
            key_g, value_g = self.slot.kv[self.layer]
            out = out + F.scaled_dot_product_attention(query, key_g.to(query), value_g.to(query))
        out = rearrange(out, "n h l d -> n l (h d)").type_as(query)
        return attn.to_out[1](attn.to_out[0](out))


class GlobalKeyValue(nn.Module):
    """K_g / V_g projections of one base block; V_g is scaled by a per-channel gate that starts at zero
    (attention is linear in V, so this gates the attention output)."""

    def __init__(self, dim: int, heads: int, eps: float):
        super().__init__()
        self.heads = heads
        self.to_k, self.to_v = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.norm_k = nn.RMSNorm(dim, eps=eps)
        self.gate = nn.Parameter(torch.zeros(dim))

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """K_g and the gated V_g of the global tokens.

        Args:
            tokens (torch.Tensor): (N, Lg, D) global-branch tokens.

        Returns:
            tuple[torch.Tensor, torch.Tensor]: K_g, V_g, each (N, heads, Lg, D / heads).
        """
        key = rearrange(self.norm_k(self.to_k(tokens)), "n l (h d) -> n h l d", h=self.heads)
        value = rearrange(self.to_v(tokens) * self.gate, "n l (h d) -> n h l d", h=self.heads)
        return key, value


class WanPatchVSRAdapter(ModelMixin, ConfigMixin):
    """Patch branch, global branch, condition embedder and fixed prompt for a Wan base of the given config.

    Build it from a base with `from_transformer`; save/load it alone with `save_pretrained`/`from_pretrained`
    (config.json + diffusion_pytorch_model.safetensors), independent of where the base is kept.
    """

    @register_to_config
    def __init__(self, in_channels: int = 16, patch_size: tuple[int, ...] = (1, 2, 2), num_attention_heads: int = 12,
                 attention_head_dim: int = 128, text_dim: int = 4096, ffn_dim: int = 8960, num_layers: int = 30,
                 cross_attn_norm: bool = True, qk_norm: str | None = "rms_norm_across_heads", eps: float = 1e-6,
                 rope_max_seq_len: int = 1024, patch_depth: int = 2, global_depth: int = 2,
                 cond_freq_dim: int = 64, prompt_length: int = 512, use_global_branch: bool = True,
                 use_position: bool = True):
        super().__init__()
        for name, value in (("patch_depth", patch_depth), ("global_depth", global_depth),
                            ("prompt_length", prompt_length), ("num_layers", num_layers)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        dim, patch = num_attention_heads * attention_head_dim, tuple(patch_size)
        self.sources = [i * patch_depth // num_layers for i in range(num_layers)]

        def blocks(depth: int) -> nn.ModuleList:
            return nn.ModuleList(WanTransformerBlock(dim, ffn_dim, num_attention_heads, qk_norm, cross_attn_norm,
                                                     eps) for _ in range(depth))

        # 1. Patch branch (copied from the base) and its zero-initialised outputs into every base block
        self.patch_embedding = nn.Conv3d(in_channels, dim, kernel_size=patch, stride=patch)
        self.rope = WanRotaryPosEmbed(attention_head_dim, patch, rope_max_seq_len)
        self.patch_blocks = blocks(patch_depth)
        self.residual_proj = nn.ModuleList(zero_init(nn.Linear(dim, dim)) for _ in range(num_layers))
        # 2. Global branch: latent G + mask, token patches twice the base's, K_g/V_g per base block
        self.global_branch = use_global_branch
        if use_global_branch:
            coarse = (patch[0], 2 * patch[1], 2 * patch[2])
            self.global_embedding = nn.Conv3d(in_channels + 1, dim, kernel_size=coarse, stride=coarse)
            self.global_rope = WanRotaryPosEmbed(attention_head_dim, coarse, rope_max_seq_len)
            self.global_blocks = blocks(global_depth)
            self.global_norm = nn.LayerNorm(dim, eps=eps)
            self.global_kv = nn.ModuleList(GlobalKeyValue(dim, num_attention_heads, eps) for _ in range(num_layers))
        # 3. Scale / crop box / noise level, added to the timestep embedding (zero at init)
        self.condition_embedder = ConditionEmbedder(dim, cond_freq_dim, use_position)
        # 4. The fixed prompt, a text-encoder output (L, text_dim)
        self.register_buffer("prompt_embeds", torch.zeros(prompt_length, text_dim))

    @classmethod
    def from_transformer(cls, base: WanTransformer3DModel, prompt_embeds: torch.Tensor, seed: int = 0,
                         **options) -> WanPatchVSRAdapter:
        """An adapter for `base` (its weights copied where the branches start from the base's).

        New weights depend only on `seed`.

        Args:
            base (WanTransformer3DModel): the Wan DiT the adapter is for.
            prompt_embeds (torch.Tensor): (L, text_dim) float, the fixed prompt's text-encoder states.
            seed (int, optional): seed of the new weights.
            **options: patch_depth, global_depth, cond_freq_dim, use_global_branch, use_position.

        Returns:
            WanPatchVSRAdapter: in the base's dtype, the new paths zero-initialised.

        Raises:
            ValueError: `prompt_embeds` is not (L, text_dim).
        """
        config = {key: base.config[key] for key in BASE_KEYS}
        config["patch_size"] = tuple(config["patch_size"])
        if prompt_embeds.ndim != 2 or prompt_embeds.shape[1] != config["text_dim"]:
            raise ValueError(f"prompt_embeds must be (L, {config['text_dim']}), got {tuple(prompt_embeds.shape)}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            adapter = cls(**config, prompt_length=prompt_embeds.shape[0], **options)
        adapter.copy_from_base(base)
        adapter.prompt_embeds.copy_(prompt_embeds)
        if adapter.dtype != base.dtype:  # nn.Module.to: diffusers' `to` warns about fp32 modules we do not have
            nn.Module.to(adapter, dtype=base.dtype)
        return adapter

    @torch.no_grad()
    def copy_from_base(self, base: WanTransformer3DModel) -> None:
        """Patch embedding and the first blocks of both branches start as the base's.

        Args:
            base (WanTransformer3DModel): the base whose weights are copied.
        """
        self.patch_embedding.load_state_dict(base.patch_embedding.state_dict())
        branches = [self.patch_blocks] + ([self.global_blocks] if self.global_branch else [])
        for branch in branches:
            for block, source in zip(branch, base.blocks):
                block.load_state_dict(source.state_dict())

    def patch_states(self, cond_latent: torch.Tensor, context: torch.Tensor,
                     timestep_proj: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The patch branch's block outputs.

        Args:
            cond_latent (torch.Tensor): (N, C, t, h, w) window latents of V_up (noise-augmented).
            context (torch.Tensor): (N, Lc, D) the projected fixed prompt.
            timestep_proj (torch.Tensor): (N, 6, D) block modulation at the condition's noise level.

        Returns:
            tuple[torch.Tensor, ...]: patch_depth tensors (N, L, D), L = the windows' token count.
        """
        rope = self.rope(cond_latent)
        tokens = rearrange(self.patch_embedding(cond_latent), "n d t h w -> n (t h w) d")
        states = []
        for block in self.patch_blocks:
            tokens = block(tokens, context, timestep_proj, rope)
            states.append(tokens)
        return tuple(states)

    def global_tokens(self, global_input: torch.Tensor, context: torch.Tensor,
                      timestep_proj: torch.Tensor) -> torch.Tensor | None:
        """The global branch's tokens.

        Args:
            global_input (torch.Tensor): (N, C + 1, t, gh, gw) latent G + the position mask in {0, 1}.
            context (torch.Tensor): (N, Lc, D) the projected fixed prompt.
            timestep_proj (torch.Tensor): (N, 6, D) block modulation at the condition's noise level.

        Returns:
            torch.Tensor | None: (N, Lg, D), Lg = t·gh·gw / 4p² (p the base's spatial patch), normalised; None
            without global branch.
        """
        if not self.global_branch:
            return None
        if not self.config.use_position:  # the ablation: the mask no longer says where the window is
            global_input = torch.cat([global_input[:, :-1], torch.zeros_like(global_input[:, -1:])], dim=1)
        rope = self.global_rope(global_input)
        tokens = rearrange(self.global_embedding(global_input), "n d t h w -> n (t h w) d")
        for block in self.global_blocks:
            tokens = block(tokens, context, timestep_proj, rope)
        return self.global_norm(tokens)

    def residuals(self, patch_states: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """The per-base-block residuals from the patch branch's block outputs.

        Args:
            patch_states (Sequence[torch.Tensor]): patch_depth tensors (N, L, D), from `patch_states`.

        Returns:
            list[torch.Tensor]: num_layers tensors (N, L, D), one per base block.
        """
        return [proj(patch_states[source]) for proj, source in zip(self.residual_proj, self.sources)]

    def global_key_values(self, tokens: torch.Tensor | None) -> list | None:
        """K_g / V_g of every base block from the global tokens (None without global branch).

        Args:
            tokens (torch.Tensor, optional): (N, Lg, D) from `global_tokens`, or None.

        Returns:
            list | None: num_layers pairs (K_g, V_g), each (N, heads, Lg, D / heads); None if `tokens` is None.
        """
        return None if tokens is None else [layer(tokens) for layer in self.global_kv]

"""The base video DiT: full 3-D self-attention over the tokens of one window, adaLN-Zero timestep conditioning,
a text cross-attention whose context is a learned fixed prompt, a conv stem and head at full resolution or
(`stem_stride` > 1) on the grid of pixel-unshuffled frames, where most of an efficient SR network's work belongs.

`VideoDiT` is a diffusers `ModelMixin` + `ConfigMixin`: its `config` holds the architecture (checked by
`check_config`), and `save_pretrained` / `from_pretrained` write and read `config.json` +
`diffusion_pytorch_model.safetensors`. It works on pixels (`in_channels=3`) or on VAE latents.
An adapter reaches inside only through `BaseInjection` (see `patchvsr.models.adapter`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.loaders.peft import PeftAdapterMixin
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from einops import rearrange
from torch import nn

from patchvsr.models.layers import (
    Attention, CrossAttention, FullResTail, Mlp, cast_model, init_linear_xavier, last_conv, modulate, output_head,
    patchify, sincos_3d, stem_conv, token_grid, unpatchify, zero_init,
)

# Presets are plain dicts of VideoDiT arguments. "tiny" is the first shipped CPU model (stem and head at full
# resolution); "lite" works on the 4x pixel-unshuffled grid (the LR grid at x4); "test" is for unit tests.
DIT_PRESETS: dict[str, dict] = {
    "test": dict(hidden_size=32, depth=2, num_heads=2, mlp_ratio=2.0, patch_size=4, patch_size_t=1,
                 stem_channels=8, context_dim=32, prompt_length=2, freq_dim=32, sample_size=16, num_frames=2),
    "tiny": dict(hidden_size=192, depth=6, num_heads=3, mlp_ratio=4.0, patch_size=8, patch_size_t=1,
                 stem_channels=32, context_dim=64, prompt_length=4, freq_dim=256, sample_size=64, num_frames=4),
    "lite": dict(hidden_size=128, depth=4, num_heads=2, mlp_ratio=2.0, patch_size=8, patch_size_t=1,
                 stem_channels=48, context_dim=64, prompt_length=4, freq_dim=256, sample_size=64, num_frames=4,
                 stem_stride=4, head_blocks=2),
    "small": dict(hidden_size=384, depth=12, num_heads=6, mlp_ratio=4.0, patch_size=8, patch_size_t=2,
                  stem_channels=64, context_dim=384, prompt_length=8, freq_dim=256, sample_size=128, num_frames=8),
}


def check_config(config: dict) -> None:
    """Validate the arguments of a `VideoDiT` (its ConfigMixin config holds them; this only checks them).

    Args:
        config (dict): the `VideoDiT.__init__` arguments by name.

    Raises:
        ValueError: naming the first argument that is out of range or inconsistent with another.
    """
    for name in ("in_channels", "hidden_size", "depth", "num_heads", "patch_size", "patch_size_t",
                 "stem_channels", "context_dim", "prompt_length", "freq_dim", "sample_size", "num_frames",
                 "stem_stride"):
        value = config[name]
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if config["out_channels"] is not None and config["out_channels"] < 1:
        raise ValueError(f"out_channels must be positive or None, got {config['out_channels']!r}")
    if config["hidden_size"] % 16 or config["hidden_size"] % config["num_heads"]:
        raise ValueError(f"hidden_size {config['hidden_size']} must be a multiple of 16 and of num_heads "
                         f"{config['num_heads']}")
    if not isinstance(config["head_blocks"], int) or config["head_blocks"] < 0:
        raise ValueError(f"head_blocks must be a non-negative integer, got {config['head_blocks']!r}")
    if not isinstance(config["tail_channels"], int) or config["tail_channels"] < 0:
        raise ValueError(f"tail_channels must be a non-negative integer, got {config['tail_channels']!r}")
    if config["patch_size"] % config["stem_stride"]:
        raise ValueError(f"patch_size {config['patch_size']} must be a multiple of stem_stride "
                         f"{config['stem_stride']}")
    if not config["mlp_ratio"] > 0:
        raise ValueError(f"mlp_ratio must be positive, got {config['mlp_ratio']!r}")
    if config["sample_size"] % config["patch_size"] or config["num_frames"] % config["patch_size_t"]:
        raise ValueError(f"sample window {config['num_frames']}x{config['sample_size']}px is not a multiple of the "
                         f"token patch {config['patch_size_t']}x{config['patch_size']}")


def grow_head_state(state: dict[str, torch.Tensor], prefix: str, old: int, new: int,
                    fresh: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict renamed for the same output head with more residual blocks (`VideoDiT.with_head_blocks`).

    The layers after the blocks move up by new - old places; the new blocks' entries come from `fresh`, so the
    result loads strictly into the grown model (any other key missing from `state` still fails the load).

    Args:
        state (dict[str, torch.Tensor]): a model's state dict.
        prefix (str): the head's key prefix, e.g. "head." or "base.head.".
        old (int): residual blocks of the head in `state`, >= 0.
        new (int): residual blocks of the head to rename for, >= old.
        fresh (dict[str, torch.Tensor]): the grown model's own state dict (its new blocks as initialised).

    Returns:
        dict[str, torch.Tensor]: the same tensors, head keys renamed, plus the new blocks' entries.
    """
    renamed = {}
    for name, value in state.items():
        if name.startswith(prefix):
            index, rest = name[len(prefix):].split(".", 1)
            if int(index) >= old:
                name = f"{prefix}{int(index) + new - old}.{rest}"
        renamed[name] = value
    added = {name: value for name, value in fresh.items() if name.startswith(prefix)
             and old <= int(name[len(prefix):].split(".", 1)[0]) < new}
    return {**renamed, **added}


@dataclasses.dataclass(frozen=True)
class BaseInjection:
    """What an adapter adds to one base forward pass (every field optional; B windows, L tokens, `depth` blocks).

    cond: (B, D) added to the timestep embedding;
    stem: (B, S, T, H / r, W / r) added to the stem convolution's output (before its activation), r = stem_stride;
    residuals: `depth` x (B, L, D) added to each block's output;
    global_kv: `depth` x (K_g, V_g), each (B, heads, Lg, D / heads), attended with the queries of each block's
        text cross-attention;
    tail: (B, tail_channels, T, H, W) added inside the full-resolution tail (`FullResTail`'s hint).
    """

    cond: torch.Tensor | None = None
    stem: torch.Tensor | None = None
    residuals: tuple[torch.Tensor, ...] | None = None
    global_kv: tuple[tuple[torch.Tensor, torch.Tensor], ...] | None = None
    tail: torch.Tensor | None = None


class DiTBlock(nn.Module):
    """adaLN-Zero self-attention, cross-attention (text + optional global), adaLN-Zero MLP: (B, L, D) -> same.

    The six modulation vectors are the shared projection of the conditioning plus this block's own learned
    table (adaLN-single, as in PixArt-alpha and Wan); both start at zero, so the block starts as the identity.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float, context_dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn1 = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.attn2 = CrossAttention(dim, heads, context_dim)
        self.norm3 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(dim, round(dim * mlp_ratio))
        self.modulation = nn.Parameter(torch.zeros(6, dim))

    def forward(
        self,
        x: torch.Tensor,
        c6: torch.Tensor,
        context: torch.Tensor,
        global_kv: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> torch.Tensor:
        """Apply the block.

        Args:
            x (torch.Tensor): (B, L, D) tokens.
            c6 (torch.Tensor): (B, 6, D) shared modulation.
            context (torch.Tensor): (B, Lc, context_dim) text tokens.
            global_kv (tuple[torch.Tensor, torch.Tensor], *optional*): (K_g, V_g) as in `BaseInjection`, each
                (B, heads, Lg, D / heads).

        Returns:
            torch.Tensor: (B, L, D).
        """
        shift1, scale1, gate1, shift3, scale3, gate3 = (c6 + self.modulation).chunk(6, dim=1)   # 6 x (B, 1, D)
        # 1. Self-attention over all T'·H'·W' tokens of the window
        x = x + gate1 * self.attn1(modulate(self.norm1(x), shift1, scale1))
        # 2. Cross-attention: text prompt and global context share the queries
        x = x + self.attn2(self.norm2(x), context, global_kv)
        # 3. MLP
        return x + gate3 * self.mlp(modulate(self.norm3(x), shift3, scale3))


class VideoDiT(ModelMixin, ConfigMixin, PeftAdapterMixin):
    """Video diffusion transformer over one window: velocity v = model(z_t, t) for rectified flow.

    x: (B, in_channels, T, H, W) with T % patch_size_t == 0 and H, W % patch_size == 0 (any such size: a
    window or a whole frame); t: (B,) in [0, 1]. Returns (B, out_channels, T, H, W) in x's dtype.
    """

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int | None = None,
        hidden_size: int = 192,
        depth: int = 6,
        num_heads: int = 3,
        mlp_ratio: float = 4.0,
        patch_size: int = 8,
        patch_size_t: int = 1,
        stem_channels: int = 32,
        context_dim: int = 64,
        prompt_length: int = 4,
        freq_dim: int = 256,
        sample_size: int = 64,
        num_frames: int = 4,
        stem_stride: int = 1,
        head_blocks: int = 0,
        tail_channels: int = 0,
    ):
        super().__init__()
        check_config(dict(self.config))
        token_dim = stem_channels * patch_size_t * self.grid_patch**2
        self.stem = stem_conv(in_channels, stem_channels, stem_stride)
        self.stem_act = nn.SiLU()
        self.patch_embed = nn.Linear(token_dim, hidden_size)
        self.time_proj = Timesteps(freq_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embed = TimestepEmbedding(freq_dim, hidden_size)
        self.time_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 6 * hidden_size))
        self.prompt = nn.Parameter(torch.randn(prompt_length, context_dim) * 0.02)
        self.blocks = nn.ModuleList(DiTBlock(hidden_size, num_heads, mlp_ratio, context_dim) for _ in range(depth))
        self.final_norm = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.final_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size))
        self.final_proj = nn.Linear(hidden_size, token_dim)
        self.head = output_head(stem_channels, out_channels or in_channels, stem_stride, head_blocks)
        self.tail = FullResTail(out_channels or in_channels, tail_channels) if tail_channels else None
        self._init_weights()

    def _init_weights(self) -> None:
        init_linear_xavier(self)
        zero_init(self.time_modulation)
        zero_init(self.final_modulation)
        zero_init(last_conv(self.head))
        if self.tail is not None:
            zero_init(self.tail.conv_out)

    @classmethod
    def from_preset(cls, name: str, seed: int = 0, **overrides) -> "VideoDiT":
        """A randomly initialised model of a preset; weights depend only on `seed`.

        Args:
            name (str): a key of DIT_PRESETS.
            seed (int, *optional*, defaults to 0): the initialisation seed.
            overrides: `VideoDiT` arguments replacing the preset's.

        Returns:
            VideoDiT: the model, float32.

        Raises:
            ValueError: for an unknown preset or a bad override (`check_config`).
        """
        if name not in DIT_PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(DIT_PRESETS)}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return cls(**{**DIT_PRESETS[name], **overrides})

    def with_head_blocks(self, blocks: int, seed: int = 0) -> "VideoDiT":
        """A copy of this model with more residual blocks in the output head: the new blocks come after the existing
        ones, their last convolution zero (each is the identity), so the copy computes exactly what this model
        does, and a fine-tune can grow the pixel decoder of a trained network.

        Args:
            blocks (int): residual blocks of the copy's head, >= this model's.
            seed (int, *optional*, defaults to 0): initialisation seed of the new blocks.

        Returns:
            VideoDiT: the copy, in this model's dtype.

        Raises:
            ValueError: if `blocks` is fewer than the head has.
        """
        old = self.config.head_blocks
        if blocks < old:
            raise ValueError(f"the head can only grow: it has {old} blocks, asked for {blocks}")

        def state(grown: VideoDiT) -> dict[str, torch.Tensor]:
            for block in grown.head[old:blocks]:
                zero_init(block.conv2)
            return grow_head_state(self.state_dict(), "head.", old, blocks, grown.state_dict())

        return self._grown(state, seed, head_blocks=blocks)

    def with_tail(self, channels: int, seed: int = 0) -> "VideoDiT":
        """A copy of this model with a full-resolution tail of `channels` hidden channels after its head
        (`FullResTail`; its last convolution zero), so the copy computes exactly what this model does.

        Args:
            channels (int): the tail's hidden channels, >= 1.
            seed (int, *optional*, defaults to 0): initialisation seed of the tail.

        Returns:
            VideoDiT: the copy, in this model's dtype.

        Raises:
            ValueError: if this model has a tail already, or `channels` < 1.
        """
        if self.config.tail_channels:
            raise ValueError(f"the model has a tail of {self.config.tail_channels} channels already")
        if channels < 1:
            raise ValueError(f"a tail needs at least one channel, got {channels}")

        def state(grown: VideoDiT) -> dict[str, torch.Tensor]:
            return {**self.state_dict(), **{f"tail.{name}": value for name, value in grown.tail.state_dict().items()}}

        return self._grown(state, seed, tail_channels=channels)

    def _grown(self, state: Callable[["VideoDiT"], dict[str, torch.Tensor]], seed: int, **changes) -> "VideoDiT":
        """A model of this one's config with `changes`, its new parts initialised from `seed`, loaded strictly
        with `state(new model)`, in this model's dtype."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            grown = type(self)(**{**self.config, **changes})
        grown.load_state_dict(state(grown))
        return grown if grown.dtype == self.dtype else cast_model(grown, self.dtype)

    @property
    def grid_patch(self) -> int:
        """Side of a token patch on the stem's grid (patch_size / stem_stride)."""
        return self.config.patch_size // self.config.stem_stride

    def grid(self, shape: torch.Size | tuple[int, ...]) -> tuple[int, int, int]:
        """Token grid (T', H', W') of a video.

        Args:
            shape (torch.Size or tuple[int, ...]): (..., T, H, W).

        Returns:
            tuple[int, int, int]: (T / patch_size_t, H / patch_size, W / patch_size).

        Raises:
            ValueError: if a size is not a multiple of the token patch.
        """
        return token_grid(shape, self.config.patch_size, self.config.patch_size_t)

    def embed_time(self, t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Timestep embedding (t scaled to [0, 1000] before the sinusoid).

        Args:
            t (torch.Tensor): (B,) in [0, 1].
            dtype (torch.dtype): the dtype the sinusoid is cast to before the MLP.

        Returns:
            torch.Tensor: (B, D).
        """
        return self.time_embed(self.time_proj(t * 1000).to(dtype))

    def tokens_in(self, feats: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        """Tokens of the stem features, with the 3-D position embedding added.

        Args:
            feats (torch.Tensor): (B, S, T, h, w) stem features on the stem's grid (h = H / stem_stride).
            grid (tuple[int, int, int]): the token grid (T', H', W').

        Returns:
            torch.Tensor: (B, L, D), L = T'·H'·W'.
        """
        tokens = self.patch_embed(patchify(feats, self.grid_patch, self.config.patch_size_t))
        return tokens + sincos_3d(self.config.hidden_size, grid, tokens.device, tokens.dtype)

    def tokens_out(self, tokens: torch.Tensor, c: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        """The adaLN final layer: tokens back to features on the stem's grid.

        Args:
            tokens (torch.Tensor): (B, L, D).
            c (torch.Tensor): (B, D) conditioning (timestep embedding plus the adapter's).
            grid (tuple[int, int, int]): the token grid (T', H', W').

        Returns:
            torch.Tensor: (B, S, T, h, w), stored channels-last.
        """
        shift, scale = self.final_modulation(c)[:, None].chunk(2, dim=-1)
        tokens = self.final_proj(modulate(self.final_norm(tokens), shift, scale))
        return unpatchify(tokens, grid, self.grid_patch, self.config.patch_size_t)

    def text_context(self, context: torch.Tensor | None, batch: int, use_prompt: bool = True) -> torch.Tensor:
        """The text cross-attention's context.

        Args:
            context (torch.Tensor, *optional*): (B, Lc, context_dim) from a text encoder; None: the learned fixed
                prompt.
            batch (int): B.
            use_prompt (bool, *optional*, defaults to True): False: a null prompt (one all-zero token, the "empty
                caption"), whatever `context` is.

        Returns:
            torch.Tensor: (B, Lc, context_dim): `context`, the prompt (Lc = prompt_length) or the null prompt
            (Lc = 1).
        """
        if not use_prompt:
            return self.prompt.new_zeros(batch, 1, self.config.context_dim)
        return self.prompt.expand(batch, -1, -1) if context is None else context

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        context: torch.Tensor | None = None,
        injection: BaseInjection | None = None,
        use_prompt: bool = True,
    ) -> torch.Tensor:
        """The velocity of a batch of windows (or whole frames).

        Args:
            x (torch.Tensor): (B, in_channels, T, H, W), T a multiple of patch_size_t, H and W of patch_size.
            t (torch.Tensor): (B,) in [0, 1].
            context (torch.Tensor, *optional*): (B, Lc, context_dim); None: the learned fixed prompt.
            injection (BaseInjection, *optional*): what an adapter adds.
            use_prompt (bool, *optional*, defaults to True): False: a null prompt replaces the fixed prompt.

        Returns:
            torch.Tensor: (B, out_channels, T, H, W) in x's dtype, contiguous.

        Raises:
            ValueError: if a size of x is not a multiple of the token patch.
        """
        inject = injection or BaseInjection()
        grid = self.grid(x.shape)
        c = self.embed_time(t, self.patch_embed.weight.dtype)                       # (B, D)
        if inject.cond is not None:
            c = c + inject.cond
        feats = self.stem(x)                                                         # (B, S, T, h, w)
        if inject.stem is not None:
            feats = feats + inject.stem
        feats = self.stem_act(feats)
        tokens = self.tokens_in(feats, grid)                                         # (B, L, D)
        context = self.text_context(context, x.shape[0], use_prompt)                 # (B, Lc, context_dim)
        c6 = rearrange(self.time_modulation(c), "b (six d) -> b six d", six=6)       # (B, 6, D)
        for index, block in enumerate(self.blocks):
            global_kv = None if inject.global_kv is None else inject.global_kv[index]
            tokens = block(tokens, c6, context, global_kv)                           # (B, L, D)
            if inject.residuals is not None:
                tokens = tokens + inject.residuals[index]
        feats = feats + self.tokens_out(tokens, c, grid)                             # (B, S, T, h, w)
        out = self.head(feats)                                                       # (B, C_out, T, H, W)
        if self.tail is not None:
            out = self.tail(out, inject.tail)
        return out.to(x.dtype).contiguous()

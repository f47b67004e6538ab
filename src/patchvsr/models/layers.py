"""Building blocks shared by the base video DiT and the adapter branches.

Conventions used everywhere in `patchvsr.models`:
- a video tensor is `(B, C, T, H, W)`;
- tokens are `(B, L, D)` with `L = T'·H'·W'` in `(t h w)` order, where `T' = T / patch_t`, `H' = H / patch`,
  `W' = W / patch` (the token grid);
- attention heads are `(B, heads, L, D / heads)`.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import get_3d_sincos_pos_embed
from einops import rearrange
from torch import nn


def cast_model(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """`model.to(dtype)` without diffusers' warning: `ModelMixin.to` (diffusers 0.42) warns about "modules that
    should be kept in float32" on every dtype cast, also when a model names none; ours keep nothing in float32.

    Args:
        model (nn.Module): the model, cast in place.
        dtype (torch.dtype): the new floating-point dtype.

    Returns:
        nn.Module: `model` itself.
    """
    return nn.Module.to(model, dtype)


def zero_init(module: nn.Module) -> nn.Module:
    """Set every parameter of `module` to zero (new conditioning paths start as the identity) and return it.

    Args:
        module (nn.Module): the module, changed in place.

    Returns:
        nn.Module: `module` itself.
    """
    for parameter in module.parameters():
        nn.init.zeros_(parameter)
    return module


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: x · (1 + scale) + shift.

    Args:
        x (torch.Tensor): (B, L, D) tokens.
        shift (torch.Tensor): (B, 1, D).
        scale (torch.Tensor): (B, 1, D).

    Returns:
        torch.Tensor: (B, L, D).
    """
    return x * (1 + scale) + shift


def token_grid(shape: torch.Size | tuple[int, ...], patch: int, patch_t: int) -> tuple[int, int, int]:
    """Token grid (T', H', W') of a video.

    Args:
        shape (torch.Size or tuple[int, ...]): (B, C, T, H, W) (only the last three are read).
        patch (int): spatial side of a token patch, in pixels.
        patch_t (int): temporal length of a token patch, in frames.

    Returns:
        tuple[int, int, int]: (T / patch_t, H / patch, W / patch).

    Raises:
        ValueError: if T is not a multiple of `patch_t` or H, W are not multiples of `patch`.
    """
    frames, height, width = shape[-3:]
    if frames % patch_t or height % patch or width % patch:
        raise ValueError(
            f"video of {frames}x{height}x{width} (frames x height x width) is not a multiple of the token patch "
            f"{patch_t}x{patch}x{patch}"
        )
    return frames // patch_t, height // patch, width // patch


def patchify(x: torch.Tensor, patch: int, patch_t: int) -> torch.Tensor:
    """One row per token patch, tokens in (t h w) order.

    Args:
        x (torch.Tensor): (B, C, T, H, W), T a multiple of `patch_t`, H and W of `patch`.
        patch (int): spatial side of a token patch.
        patch_t (int): temporal length of a token patch.

    Returns:
        torch.Tensor: (B, L, patch_t·patch·patch·C), L = T'·H'·W', each row in (pt ph pw c) order; x's dtype.
    """
    return rearrange(x, "b c (t pt) (h ph) (w pw) -> b (t h w) (pt ph pw c)", pt=patch_t, ph=patch, pw=patch)


def unpatchify(tokens: torch.Tensor, grid: tuple[int, int, int], patch: int, patch_t: int) -> torch.Tensor:
    """Inverse of `patchify`.

    The result is stored channels-last (`torch.channels_last_3d`), the layout `FrameConv` works in.

    Args:
        tokens (torch.Tensor): (B, L, patch_t·patch·patch·C), L = T'·H'·W'.
        grid (tuple[int, int, int]): the token grid (T', H', W').
        patch (int): spatial side of a token patch.
        patch_t (int): temporal length of a token patch.

    Returns:
        torch.Tensor: (B, C, T'·patch_t, H'·patch, W'·patch), tokens' dtype.
    """
    frames, height, width = grid
    video = rearrange(
        tokens,
        "b (t h w) (pt ph pw c) -> b (t pt) (h ph) (w pw) c",
        t=frames, h=height, w=width, pt=patch_t, ph=patch, pw=patch,
    )
    return video.permute(0, 4, 1, 2, 3)


def _sincos_3d_table(dim: int, frames: int, height: int, width: int) -> torch.Tensor:
    table = get_3d_sincos_pos_embed(dim, (width, height), frames, output_type="pt")  # (T', H'·W', D)
    return rearrange(table, "t hw d -> (t hw) d")


_sincos_3d_cached = functools.lru_cache(maxsize=32)(_sincos_3d_table)


def sincos_3d(dim: int, grid: tuple[int, int, int], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Fixed 3-D sin-cos position embedding for ANY token grid.

    Computed on the fly, so a window of any size, including a whole frame, works; eager calls reuse a per-grid
    CPU cache, compiled graphs (torch.compile) compute it in the graph.

    Args:
        dim (int): embedding width D, dim % 16 == 0.
        grid (tuple[int, int, int]): the token grid (T', H', W').
        device (torch.device): where the result goes.
        dtype (torch.dtype): the result's dtype.

    Returns:
        torch.Tensor: (T'·H'·W', dim), rows in (t h w) token order.
    """
    make = _sincos_3d_table if torch.compiler.is_compiling() else _sincos_3d_cached
    return make(dim, *grid).to(device=device, dtype=dtype)


class FrameConv(nn.Conv2d):
    """The same 2-D convolution applied to every frame: (B, C, T, H, W) -> (B, C_out, T, H, W), same H and W.

    Works in the channels-last layout (`torch.channels_last_3d`): there, folding T into the batch is a free view
    and oneDNN's NHWC kernels run, which are an order of magnitude faster than NCHW under bf16 on CPU. The
    output is channels-last too, so chained convolutions never copy.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve every frame.

        Args:
            x (torch.Tensor): (B, in_channels, T, H, W), any layout.

        Returns:
            torch.Tensor: (B, out_channels, T, H, W), stored channels-last.
        """
        frames = x.shape[2]
        x = x.contiguous(memory_format=torch.channels_last_3d)
        y = super().forward(rearrange(x, "b c t h w -> (b t) c h w"))                # channels-last view
        return rearrange(y.contiguous(memory_format=torch.channels_last), "(b t) c h w -> b c t h w", t=frames)


class SpaceToDepth(nn.Module):
    """Pixel unshuffle of every frame: (B, C, T, H, W) -> (B, C·r², T, H / r, W / r), channels in (c r r) order.

    The result is stored channels-last (`torch.channels_last_3d`), the layout `FrameConv` works in: one copy,
    where the channels-first result would need a second one before the convolution.
    """

    def __init__(self, factor: int):
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel-unshuffle every frame by `factor` r.

        Args:
            x (torch.Tensor): (B, C, T, H, W), H and W multiples of r.

        Returns:
            torch.Tensor: (B, C·r², T, H / r, W / r), channels in (c r r) order, stored channels-last.
        """
        r = self.factor
        return rearrange(x, "b c t (h r1) (w r2) -> b t h w (c r1 r2)", r1=r, r2=r).permute(0, 4, 1, 2, 3)


class DepthToSpace(SpaceToDepth):
    """Pixel shuffle of every frame, the inverse of `SpaceToDepth`: (B, C·r², T, h, w) -> (B, C, T, h·r, w·r)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel-shuffle every frame by `factor` r.

        Args:
            x (torch.Tensor): (B, C·r², T, h, w), channels in (c r r) order.

        Returns:
            torch.Tensor: (B, C, T, h·r, w·r).
        """
        r = self.factor
        return rearrange(x, "b (c r1 r2) t h w -> b c t (h r1) (w r2)", r1=r, r2=r)


def stem_conv(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """The 3x3 input convolution of a video, at full resolution (stride 1: a plain `FrameConv`) or on the
    `stride`-times smaller grid of its pixel-unshuffled frames.

    Args:
        in_channels (int): C of the input video.
        out_channels (int): channels of the features.
        stride (int): s >= 1, the pixel-unshuffle factor.

    Returns:
        nn.Module: (B, in_channels, T, H, W) -> (B, out_channels, T, H / s, W / s), H and W multiples of s.
    """
    if stride == 1:
        return FrameConv(in_channels, out_channels, 3)
    return nn.Sequential(SpaceToDepth(stride), FrameConv(in_channels * stride * stride, out_channels, 3))


class ResidualConvBlock(nn.Module):
    """conv 3x3, SiLU, conv 3x3, plus the input (EDSR's block without normalisation): (B, C, T, H, W) -> same."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = FrameConv(channels, channels, 3)
        self.act = nn.SiLU()
        self.conv2 = FrameConv(channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block.

        Args:
            x (torch.Tensor): (B, C, T, H, W).

        Returns:
            torch.Tensor: (B, C, T, H, W).
        """
        return x + self.conv2(self.act(self.conv1(x)))


def output_head(channels: int, out_channels: int, stride: int, blocks: int) -> nn.Sequential:
    """The pixel decoder: `blocks` residual conv blocks, conv, SiLU, conv, then (stride > 1) a pixel shuffle.
    The last conv is the module's last layer with parameters (`last_conv`), zero-initialised by the model.

    Args:
        channels (int): channels of the features on the stem's grid.
        out_channels (int): channels of the output video.
        stride (int): s >= 1, the stem's pixel-unshuffle factor (undone here).
        blocks (int): residual blocks, >= 0.

    Returns:
        nn.Sequential: (B, channels, T, h, w) -> (B, out_channels, T, h·s, w·s).
    """
    layers: list[nn.Module] = [ResidualConvBlock(channels) for _ in range(blocks)]
    layers += [FrameConv(channels, channels, 3), nn.SiLU(), FrameConv(channels, out_channels * stride * stride, 3)]
    if stride > 1:
        layers.append(DepthToSpace(stride))
    return nn.Sequential(*layers)


class FullResTail(nn.Module):
    """A small network at the output resolution after a pixel-shuffling head: the head's output and a hint (the
    adapter's projection of the upsampled LR window) enter one 3x3 convolution each, then SiLU, a 3x3
    convolution, SiLU and a 3x3 convolution back, added to the head's output. Its last convolution starts at
    zero, so a tail added to a trained model starts as the identity. (B, C, T, H, W) -> same.

    Args:
        channels (int): C, the output video's channels.
        width (int): the tail's hidden channels.
    """

    def __init__(self, channels: int, width: int):
        super().__init__()
        self.conv_in = FrameConv(channels, width, 3)
        self.conv_mid = FrameConv(width, width, 3)
        self.conv_out = FrameConv(width, channels, 3)
        self.act = nn.SiLU()

    def forward(self, out: torch.Tensor, hint: torch.Tensor | None = None) -> torch.Tensor:
        """Refine the head's output.

        Args:
            out (torch.Tensor): (B, C, T, H, W), the head's output.
            hint (torch.Tensor, *optional*): (B, width, T, H, W), added before the first activation.

        Returns:
            torch.Tensor: (B, C, T, H, W), stored channels-last.
        """
        features = self.conv_in(out)
        if hint is not None:
            features = features + hint
        features = self.act(self.conv_mid(self.act(features)))
        return out + self.conv_out(features)


def last_conv(module: nn.Sequential) -> nn.Module:
    """The last layer of `module` that has parameters.

    Args:
        module (nn.Sequential): e.g. an `output_head`.

    Returns:
        nn.Module: that layer.
    """
    return next(layer for layer in reversed(module) if any(True for _ in layer.parameters()))


class HeadNorm(nn.RMSNorm):
    """RMSNorm over the last axis whose weight follows the input's dtype (under bf16 autocast the input is bf16
    and the weight float32).

    For bf16/fp16 on the CPU, `F.rms_norm` copies the whole input to float32 first; here one reduction
    accumulates in float32 and the scaling stays in the input's dtype (docs/lite_model_notes.md: the gain).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """RMS-normalise over the last axis.

        Args:
            x (torch.Tensor): (..., D), any float dtype.

        Returns:
            torch.Tensor: x's shape and dtype.
        """
        weight = self.weight.to(x.dtype)
        if x.device.type != "cpu" or x.dtype == torch.float32:
            return F.rms_norm(x, self.normalized_shape, weight, self.eps)
        norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True, dtype=torch.float32)
        inverse_rms = torch.rsqrt(norm.square() / x.shape[-1] + self.eps)      # (..., 1): small, out of place
        return x * inverse_rms.to(x.dtype) * weight


def split_heads(x: torch.Tensor, heads: int, norm: nn.Module | None = None) -> torch.Tensor:
    """Split the channels into heads, normalised per head by `norm` first (on contiguous rows).

    Args:
        x (torch.Tensor): (B, L, D), D a multiple of `heads`.
        heads (int): number of heads.
        norm (nn.Module, *optional*): applied to each (D / heads) head vector, e.g. a `HeadNorm`.

    Returns:
        torch.Tensor: (B, heads, L, D / heads).
    """
    x = rearrange(x, "b l (h d) -> b l h d", h=heads)
    return (x if norm is None else norm(x)).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with RMS-normalised queries and keys (stable under bf16), through SDPA."""

    def __init__(self, dim: int, heads: int, context_dim: int | None = None):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(context_dim or dim, dim)
        self.to_v = nn.Linear(context_dim or dim, dim)
        self.to_out = nn.Linear(dim, dim)
        self.norm_q = HeadNorm(dim // heads, eps=1e-6)
        self.norm_k = HeadNorm(dim // heads, eps=1e-6)

    def queries(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised queries.

        Args:
            x (torch.Tensor): (B, L, D).

        Returns:
            torch.Tensor: (B, heads, L, D / heads).
        """
        return split_heads(self.to_q(x), self.heads, self.norm_q)

    def keys_values(self, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys (normalised) and values of a source.

        Args:
            source (torch.Tensor): (B, Ls, Ds), Ds = `context_dim` (or D without one).

        Returns:
            tuple[torch.Tensor, torch.Tensor]: keys and values, each (B, heads, Ls, D / heads).
        """
        return split_heads(self.to_k(source), self.heads, self.norm_k), split_heads(self.to_v(source), self.heads)

    def project_out(self, heads: torch.Tensor) -> torch.Tensor:
        """Merge the heads and project.

        Args:
            heads (torch.Tensor): (B, heads, L, D / heads).

        Returns:
            torch.Tensor: (B, L, D).
        """
        return self.to_out(rearrange(heads, "b h l d -> b l (h d)"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Full self-attention over all L tokens.

        Args:
            x (torch.Tensor): (B, L, D).

        Returns:
            torch.Tensor: (B, L, D).
        """
        q = self.queries(x)
        return self.project_out(F.scaled_dot_product_attention(q, *self.keys_values(x)))


class CrossAttention(Attention):
    """Text cross-attention plus an optional decoupled cross-attention that shares its queries.

    `extra_kv` are keys/values from another source (the global branch), projected by that source's own K/V
    layers (Wan / IP-Adapter): out = to_out(attn(Q, K_text, V_text) + attn(Q, K_g, V_g)).
    """

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor,
        extra_kv: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Cross-attention to the text context, plus the decoupled attention to `extra_kv`.

        Args:
            x (torch.Tensor): (B, L, D) queries' source.
            context (torch.Tensor): (B, Lc, context_dim) text tokens.
            extra_kv (tuple[torch.Tensor, torch.Tensor], *optional*): (K_g, V_g), each (B, heads, Lg, D / heads).

        Returns:
            torch.Tensor: (B, L, D).
        """
        q = self.queries(x)
        out = F.scaled_dot_product_attention(q, *self.keys_values(context))
        if extra_kv is not None:
            out = out + F.scaled_dot_product_attention(q, *extra_kv)
        return self.project_out(out)


class Mlp(nn.Module):
    """Two-layer GELU MLP: (B, L, D) -> (B, L, D)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the MLP.

        Args:
            x (torch.Tensor): (B, L, D).

        Returns:
            torch.Tensor: (B, L, D).
        """
        return self.fc2(self.act(self.fc1(x)))


class TransformerBlock(nn.Module):
    """Plain pre-norm Transformer block (self-attention + MLP) for the adapter's encoders: (B, L, D) -> same."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn1 = Attention(dim, heads)
        self.norm3 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, round(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block.

        Args:
            x (torch.Tensor): (B, L, D).

        Returns:
            torch.Tensor: (B, L, D).
        """
        x = x + self.attn1(self.norm1(x))
        return x + self.mlp(self.norm3(x))


def init_linear_xavier(module: nn.Module) -> None:
    """DiT's initialisation: xavier-uniform weights and zero biases for every nn.Linear under `module`.

    Args:
        module (nn.Module): the module, changed in place.
    """
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


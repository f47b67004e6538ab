"""The PatchVSR dual-branch adapter: a patch branch (ControlNet-style per-block residuals from the upsampled LR
window) and a global branch (context tokens from the downsized whole frame + the window's position mask, read by
a decoupled cross-attention that shares the text cross-attention's queries).

Everything new starts at zero, so at initialisation the adapted base computes exactly what the base computes.
The work splits in two: `branch_features` depends only on the window's conditions, never on the sampling time t
(computed once per window and kept in a `BranchCache` for the clip), and `injection` is the cheap per-step part
that turns the features into a `BaseInjection`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Sequence

import torch
from torch import nn

from patchvsr.models.dit import BaseInjection, VideoDiT
from patchvsr.models.layers import (
    FrameConv, HeadNorm, TransformerBlock, init_linear_xavier, patchify, sincos_3d, split_heads, stem_conv,
    token_grid, zero_init,
)


@dataclasses.dataclass(frozen=True, eq=False)
class BranchFeatures:
    """t-independent features of N windows: patch_states: `patch_depth` x (N, L, D) patch-branch block outputs;
    global_tokens: (N, Lg, D) global-branch context tokens, or None without global branch."""

    patch_states: tuple[torch.Tensor, ...]
    global_tokens: torch.Tensor | None

    def row(self, index: int) -> "BranchFeatures":
        """Features of one window, without the batch axis, detached from autograd (for the cache).

        Args:
            index (int): the row in [0, N).

        Returns:
            BranchFeatures: patch_states `patch_depth` x (L, D); global_tokens (Lg, D) or None.
        """
        tokens = None if self.global_tokens is None else self.global_tokens[index].detach()
        return BranchFeatures(tuple(state[index].detach() for state in self.patch_states), tokens)

    @staticmethod
    def stack(rows: list["BranchFeatures"]) -> "BranchFeatures":
        """Inverse of `row`: N single-window features -> batched features.

        Args:
            rows (list[BranchFeatures]): N features without batch axis, of one shape.

        Returns:
            BranchFeatures: patch_states `patch_depth` x (N, L, D); global_tokens (N, Lg, D) or None.
        """
        states = tuple(torch.stack(layer) for layer in zip(*(r.patch_states for r in rows)))
        tokens = None if rows[0].global_tokens is None else torch.stack([r.global_tokens for r in rows])
        return BranchFeatures(states, tokens)

    def nbytes(self) -> int:
        """Memory held by these features.

        Returns:
            int: bytes of the patch states and global tokens.
        """
        tensors = [*self.patch_states, *([] if self.global_tokens is None else [self.global_tokens])]
        return sum(t.numel() * t.element_size() for t in tensors)


class BranchCache:
    """Maps a window key to that window's `BranchFeatures` (no batch axis, detached from autograd)."""

    def __init__(self):
        self._store: dict[Hashable, BranchFeatures] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._store)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._store

    def clear(self) -> None:
        """Forget every window (call between clips: keys are only unique within one tile plan and clip)."""
        self._store.clear()

    def nbytes(self) -> int:
        """Memory held by the cached tensors.

        Returns:
            int: bytes.
        """
        return sum(features.nbytes() for features in self._store.values())

    def fetch(
        self, keys: Sequence[Hashable], compute: Callable[[list[int]], BranchFeatures]
    ) -> BranchFeatures:
        """Batched features of the windows `keys`, computing only those not cached yet.

        Args:
            keys (Sequence[Hashable]): N window keys (repeats allowed).
            compute (Callable[[list[int]], BranchFeatures]): called at most once, on the rows whose key is not cached
                yet (first occurrence of each); must return their features in that order.

        Returns:
            BranchFeatures: N rows in `keys` order (patch_states `patch_depth` x (N, L, D), global_tokens
            (N, Lg, D) or None), detached from autograd.
        """
        missing: dict[Hashable, int] = {}
        for row, key in enumerate(keys):
            if key not in self._store and key not in missing:
                missing[key] = row
        if missing:
            computed = compute(list(missing.values()))
            for position, key in enumerate(missing):
                self._store[key] = computed.row(position)
        self.misses += len(missing)
        self.hits += len(keys) - len(missing)
        return BranchFeatures.stack([self._store[key] for key in keys])


class PatchBranch(nn.Module):
    """Transformer blocks over the tokens of the upsampled LR window, with the base's stem and token layout."""

    def __init__(self, base: VideoDiT, depth: int):
        super().__init__()
        spec = base.config
        self.patch, self.patch_t, self.dim = spec.patch_size, spec.patch_size_t, spec.hidden_size
        self.grid_patch = base.grid_patch
        self.stem = stem_conv(spec.in_channels, spec.stem_channels, spec.stem_stride)
        self.stem_act = nn.SiLU()
        self.patch_embed = nn.Linear(spec.stem_channels * self.patch_t * self.grid_patch**2, self.dim)
        self.blocks = nn.ModuleList(
            TransformerBlock(self.dim, spec.num_heads, spec.mlp_ratio) for _ in range(depth)
        )

    def copy_from_base(self, base: VideoDiT) -> None:
        """Start from the base's stem, token embedding and first blocks (ControlNet's `from_transformer`).

        Args:
            base (VideoDiT): the base this branch was built for.
        """
        self.stem.load_state_dict(base.stem.state_dict())
        self.patch_embed.load_state_dict(base.patch_embed.state_dict())
        for block, source in zip(self.blocks, base.blocks):
            block.attn1.load_state_dict(source.attn1.state_dict())
            block.mlp.load_state_dict(source.mlp.state_dict())

    def stem_features(self, lr_up: torch.Tensor) -> torch.Tensor:
        """Features on the base stem's grid.

        Args:
            lr_up (torch.Tensor): (N, C, T, h, w) in [-1, 1].

        Returns:
            torch.Tensor: (N, S, T, h / r, w / r), S = stem_channels, r = stem_stride.
        """
        return self.stem_act(self.stem(lr_up))

    def forward(self, lr_up: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The output of every block.

        Args:
            lr_up (torch.Tensor): (N, C, T, h, w) in [-1, 1], h and w multiples of the token patch.

        Returns:
            tuple[torch.Tensor, ...]: `depth` x (N, L, D), L = T'·H'·W' the window's tokens.
        """
        grid = token_grid(lr_up.shape, self.patch, self.patch_t)
        tokens = self.patch_embed(patchify(self.stem_features(lr_up), self.grid_patch, self.patch_t))
        tokens = tokens + sincos_3d(self.dim, grid, tokens.device, tokens.dtype)
        states = []
        for block in self.blocks:
            tokens = block(tokens)
            states.append(tokens)
        return tuple(states)


class GlobalBranch(nn.Module):
    """Encoder over concat(G, M_i) with token patches twice the base's: a window-sized G gives a quarter of the
    window's tokens. (N, C + 1, T, gh, gw) -> (N, Lg, D)."""

    def __init__(self, base: VideoDiT, depth: int):
        super().__init__()
        spec = base.config
        self.patch, self.patch_t, self.dim = 2 * spec.patch_size, spec.patch_size_t, spec.hidden_size
        self.patch_embed = nn.Linear((spec.in_channels + 1) * self.patch_t * self.patch**2, self.dim)
        self.blocks = nn.ModuleList(
            TransformerBlock(self.dim, spec.num_heads, spec.mlp_ratio) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(self.dim, eps=1e-6)

    def forward(self, global_input: torch.Tensor) -> torch.Tensor:
        """Context tokens of the global input.

        Args:
            global_input (torch.Tensor): (N, C + 1, T, gh, gw): G in [-1, 1] + mask in {0, 1}; gh and gw multiples
                of twice the base's token patch.

        Returns:
            torch.Tensor: (N, Lg, D), Lg = (T / patch_t)·(gh / 2p)·(gw / 2p) for the base's token patch p.
        """
        grid = token_grid(global_input.shape, self.patch, self.patch_t)
        tokens = self.patch_embed(patchify(global_input, self.patch, self.patch_t))
        tokens = tokens + sincos_3d(self.dim, grid, tokens.device, tokens.dtype)
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)


class GlobalKeyValue(nn.Module):
    """New K_g / V_g projections of one base block, with a zero-initialised per-channel output gate.

    The gate multiplies V_g; attention is linear in V, so this equals gating the attention output, and a zero
    gate makes the new cross-attention contribute exactly nothing.
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.to_k = nn.Linear(dim, dim)
        self.to_v = nn.Linear(dim, dim)
        self.norm_k = HeadNorm(dim // heads, eps=1e-6)
        self.gate = nn.Parameter(torch.zeros(dim))

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """K_g (normalised) and gated V_g of the global tokens.

        Args:
            tokens (torch.Tensor): (N, Lg, D).

        Returns:
            tuple[torch.Tensor, torch.Tensor]: K_g, V_g, each (N, heads, Lg, D / heads).
        """
        keys = split_heads(self.to_k(tokens), self.heads, self.norm_k)
        return keys, split_heads(self.to_v(tokens) * self.gate, self.heads)


class PatchVSRAdapter(nn.Module):
    """Patch branch + global branch + the zero-initialised layers that connect them to a base VideoDiT."""

    def __init__(self, base: VideoDiT, patch_depth: int, global_depth: int, use_global_branch: bool,
                 use_position: bool):
        super().__init__()
        spec = base.config
        self.in_channels, self.use_position = spec.in_channels, use_position
        self.patch_branch = PatchBranch(base, patch_depth)
        # base block i reads patch-branch block i·patch_depth // depth (evenly spread, ControlNet-SD3 style)
        self.sources = [i * patch_depth // spec.depth for i in range(spec.depth)]
        self.residual_proj = nn.ModuleList(nn.Linear(spec.hidden_size, spec.hidden_size) for _ in range(spec.depth))
        # the LR window also enters on the stem's grid: added to the base stem's pre-activation (ControlNet hint)
        self.stem_proj = stem_conv(spec.in_channels, spec.stem_channels, spec.stem_stride)
        # ... and at the output resolution into the base's full-resolution tail, where it has one
        self.tail_proj = FrameConv(spec.in_channels, spec.tail_channels, 3) if spec.tail_channels else None
        self.global_branch = GlobalBranch(base, global_depth) if use_global_branch else None
        self.global_kv = nn.ModuleList(
            GlobalKeyValue(spec.hidden_size, spec.num_heads) for _ in range(spec.depth)
        ) if use_global_branch else None
        init_linear_xavier(self)
        for layer in (*self.residual_proj, self.stem_proj, self.tail_proj):
            if layer is not None:
                zero_init(layer)
        self.patch_branch.copy_from_base(base)

    def position_switch(self, global_input: torch.Tensor) -> torch.Tensor:
        """The global input with the mask channel zeroed when position is switched off.

        Args:
            global_input (torch.Tensor): (N, C + 1, T, gh, gw).

        Returns:
            torch.Tensor: (N, C + 1, T, gh, gw) (the input itself with `use_position`).
        """
        if self.use_position:
            return global_input
        image, mask = global_input[:, : self.in_channels], global_input[:, self.in_channels:]
        return torch.cat([image, torch.zeros_like(mask)], dim=1)

    def branch_features(self, lr_up: torch.Tensor, global_input: torch.Tensor | None) -> BranchFeatures:
        """The t-independent features of N windows.

        Args:
            lr_up (torch.Tensor): (N, C, T, h, w) in [-1, 1].
            global_input (torch.Tensor, *optional*): (N, C + 1, T, gh, gw); required with a global branch.

        Returns:
            BranchFeatures: patch_states `patch_depth` x (N, L, D); global_tokens (N, Lg, D) or None.

        Raises:
            ValueError: if the model has a global branch and `global_input` is None.
        """
        tokens = None
        if self.global_branch is not None:
            if global_input is None:
                raise ValueError("this model has a global branch: WindowConditions.global_input is required")
            tokens = self.global_branch(self.position_switch(global_input))
        return BranchFeatures(self.patch_branch(lr_up), tokens)

    def injection(self, features: BranchFeatures, lr_up: torch.Tensor, cond: torch.Tensor) -> BaseInjection:
        """Per-step part: what the adapter adds to one base forward pass.

        Args:
            features (BranchFeatures): the N windows' branch features.
            lr_up (torch.Tensor): (N, C, T, h, w) in [-1, 1].
            cond (torch.Tensor): (N, D) condition embedding.

        Returns:
            BaseInjection: cond (N, D), stem (N, S, T, h / r, w / r), residuals `depth` x (N, L, D), global_kv
            `depth` x 2 x (N, heads, Lg, D / heads) or None, tail (N, tail_channels, T, h, w) or None.
        """
        residuals = tuple(proj(features.patch_states[src]) for proj, src in zip(self.residual_proj, self.sources))
        global_kv = None
        if self.global_kv is not None:
            global_kv = tuple(layer(features.global_tokens) for layer in self.global_kv)
        tail = None if self.tail_proj is None else self.tail_proj(lr_up)
        return BaseInjection(cond=cond, stem=self.stem_proj(lr_up), residuals=residuals, global_kv=global_kv,
                             tail=tail)

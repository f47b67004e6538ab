"""Training samples by global position: the data order, the degradation and the flow-matching draw (t, ε)
of sample number p are pure functions of (seed, p), so resuming at step s reproduces the exact stream.

Sample p reads clip perm_e[p mod N] of epoch e = p div N (a fresh permutation per epoch), degrades it with the
generator seeded from (seed, "sample", p) and draws its t and ε from the same generator:
- with probability `t_one_share`, t = 1; of those, `zero_noise_share` get ε = 0, i.e. z_1 = 0 with target
  -z0: one Euler step from z = 0 at t = 1 is then trained to be the MMSE (fidelity) estimate;
- otherwise t ~ U(0, 1) (`uniform`) or sigmoid(N(0, 1)) (`logit_normal`, SD3's), and ε ~ N(0, I).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset, Sampler

from patchvsr.train.data import ClipStore, seeded_generator
from patchvsr.train.degrade import Degraded, DegradeConfig, degrade_clip

T_DISTRIBUTIONS = ("uniform", "logit_normal")


@dataclass(frozen=True)
class FlowDraw:
    """How training times and noises are drawn (see the module docstring)."""

    t_one_share: float = 0.3
    zero_noise_share: float = 0.5
    t_distribution: str = "uniform"

    def __post_init__(self) -> None:
        for name in ("t_one_share", "zero_noise_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.t_distribution not in T_DISTRIBUTIONS:
            raise ValueError(f"t_distribution must be one of {T_DISTRIBUTIONS}, got {self.t_distribution!r}")


# The validation draw: every sample at t = 1 from z = 0 (fidelity mode), clean x4 bicubic LR.
FIDELITY_DRAW = FlowDraw(t_one_share=1.0, zero_noise_share=1.0)


# The validation splits inside training: the held-out clips as they are, as soft sources (every canvas blurred,
# `realistic.soften`), with the LR written as H.264 CRF 30 (`patchvsr eval --lr-crf 30`), and the clips cut from
# the held-out end of every video (where the data has them: `patchvsr data --footage-val-clips`).
VALIDATION_SPLITS = ("clean", "soft", "crf30", "footage")


def validation_data_split(split: str) -> str:
    """The data split (`ClipStore`) that a validation split reads.

    Args:
        split (str): one of VALIDATION_SPLITS.

    Returns:
        str: "val_footage" for "footage", else "val" (the held-out photos).
    """
    return "val_footage" if split == "footage" else "val"


def validation_degradation(config: DegradeConfig, split: str = "clean") -> DegradeConfig:
    """The evaluation protocol inside training for one of VALIDATION_SPLITS: x4 antialiased bicubic, 8-bit, no
    noise augmentation, no realistic chain (soft: every canvas blurred; crf30: the LR written as H.264 CRF 30;
    footage: as clean, on other clips).

    Args:
        config (DegradeConfig): the run's degradation settings (window, frames, global size are kept).
        split (str, *optional*, defaults to "clean"): one of VALIDATION_SPLITS.

    Returns:
        DegradeConfig: the split's settings.

    Raises:
        ValueError: for an unknown split.
    """
    if split not in VALIDATION_SPLITS:
        raise ValueError(f"split must be one of {VALIDATION_SPLITS}, got {split!r}")
    return dataclasses.replace(config, scale_range=(4.0, 4.0), bicubic_share=1.0, clean_share=1.0,
                               realistic_share=0.0, soft_share=1.0 if split == "soft" else 0.0, grain_share=0.0,
                               lr_crf=30 if split == "crf30" else None)


def draw_time_and_noise(shape: tuple[int, ...], draw: FlowDraw,
                        generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One sample's flow-matching draw (module docstring).

    Args:
        shape (tuple[int, ...]): the noise's shape, e.g. (3, T, h, w).
        draw (FlowDraw): how t and ε are drawn.
        generator (torch.Generator): the sample's generator.

    Returns:
        tuple[torch.Tensor, torch.Tensor]: t () float32 in [0, 1]; ε of `shape`, float32 ~ N(0, I) (zeros for
        the z = 0 share at t = 1).
    """
    if float(torch.rand((), generator=generator, dtype=torch.float64)) < draw.t_one_share:
        zero = float(torch.rand((), generator=generator, dtype=torch.float64)) < draw.zero_noise_share
        noise = torch.randn(shape, generator=generator)
        return torch.tensor(1.0), noise * (0.0 if zero else 1.0)
    if draw.t_distribution == "logit_normal":
        t = torch.sigmoid(torch.randn((), generator=generator))
    else:
        t = torch.rand((), generator=generator)
    return t.float(), torch.randn(shape, generator=generator)


class PositionSamples(Dataset):
    """Map-style dataset over global sample positions p >= 0 (see the module docstring).

    Item p: a dict with the fields of `Degraded` (without batch axis) plus "t": () and "noise": like "hr".
    The clip store opens lazily, so the dataset pickles cheaply into DataLoader workers.
    """

    def __init__(self, data_dir: str | Path, split: str, degrade: DegradeConfig, draw: FlowDraw, seed: int,
                 shuffle: bool = True):
        self.data_dir, self.split = Path(data_dir), split
        self.degrade, self.draw, self.seed, self.shuffle = degrade, draw, seed, shuffle
        self._store: ClipStore | None = None
        self._order: tuple[int, torch.Tensor] | None = None

    @property
    def store(self) -> ClipStore:
        if self._store is None:
            self._store = ClipStore(self.data_dir, self.split)
        return self._store

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_store": None, "_order": None}

    def clip_index(self, position: int) -> int:
        """Which clip sample `position` reads: a fresh permutation of the clips per epoch (or in order).

        Args:
            position (int): the global sample position p >= 0.

        Returns:
            int: a clip index in [0, len(store)).
        """
        count = len(self.store)
        epoch, offset = divmod(position, count)
        if not self.shuffle:
            return offset
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, torch.randperm(count, generator=seeded_generator(self.seed, "epoch", epoch)))
        return int(self._order[1][offset])

    def __getitem__(self, position: int) -> dict[str, torch.Tensor]:
        generator = seeded_generator(self.seed, self.split, "sample", position)
        clip = self.store.clips([self.clip_index(position)])[0]
        sample = degrade_clip(clip, self.degrade, generator)
        sample["t"], sample["noise"] = draw_time_and_noise(tuple(sample["hr"].shape), self.draw, generator)
        return sample


class StepPositions(Sampler):
    """Positions of one process from training step `start_step` on, forever: step s, rank r of `world`
    processes, batch b -> positions (s·world + r)·b + j for j < b."""

    def __init__(self, start_step: int, batch: int, rank: int = 0, world: int = 1):
        self.start_step, self.batch, self.rank, self.world = start_step, batch, rank, world

    def __iter__(self) -> Iterator[int]:
        step = self.start_step
        while True:
            first = (step * self.world + self.rank) * self.batch
            yield from range(first, first + self.batch)
            step += 1


def split_batch(batch: dict[str, torch.Tensor]) -> tuple[Degraded, torch.Tensor, torch.Tensor]:
    """A collated batch of `PositionSamples` items as the training loop takes it.

    Args:
        batch (dict[str, torch.Tensor]): the `Degraded` fields, "t" and "noise", each with a batch axis B.

    Returns:
        tuple[Degraded, torch.Tensor, torch.Tensor]: (Degraded, t (B,), noise (B, 3, T, h, w)).
    """
    fields = {name: batch[name] for name in Degraded.__dataclass_fields__}
    return Degraded(**fields), batch["t"], batch["noise"]

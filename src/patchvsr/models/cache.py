"""Per-window cache of the adapter's branch features for one clip.

The patch and global branch outputs depend only on the window's conditions (LR window, global frame + mask),
never on the sampling time t: they are computed once per window and reused at every sampling step. Keys are the
window indices of the tile plan, so the cache is only valid for one clip: call `clear()` before the next clip.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

from patchvsr.models.adapter import BranchFeatures


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
        """Memory held by the cached tensors, in bytes."""
        return sum(features.nbytes() for features in self._store.values())

    def fetch(
        self, keys: Sequence[Hashable], compute: Callable[[list[int]], BranchFeatures]
    ) -> BranchFeatures:
        """Batched features of the windows `keys`; `compute(rows)` is called once, on the rows whose key is not
        cached yet (first occurrence of each), and must return their features in that order."""
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

"""Memory of this process: keep freed memory for reuse while a clip runs (`reuse_freed_memory`), hand it back
to the system between clips (`trim`), and measure peaks (`PeakMemory`).

glibc serves an allocation above its mmap threshold (dynamic, at most 32 MiB) by a fresh mmap and returns it
at free, and trims the heap whenever its free top exceeds the trim threshold: the model's per-batch
activations (tens of MB per batch of windows) are then paged in anew on every call, a page-fault storm.
`reuse_freed_memory()` raises both thresholds so freed blocks are reused; the clip loop still calls `trim()`
after every clip, so a long video does not accumulate a fragmented heap.
The measured effect is in docs/RESULTS.md. No effect without glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import re
import resource
import sys
from pathlib import Path


@functools.cache
def _libc():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEEP_BYTES = 1 << 30


@functools.cache
def reuse_freed_memory() -> bool:
    """Serve allocations below 1 GiB from the heap and keep up to 1 GiB of freed heap for reuse (glibc's
    mallopt; process-wide, done once).

    Returns:
        bool: True where it took effect (False without glibc).
    """
    libc = _libc()
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES)) & bool(libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES))


def trim() -> None:
    """Release the free memory at the top and inside the heap to the system (glibc only; else nothing)."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


class PeakMemory:
    """Peak resident memory of this process in MB since the last `reset()` (Linux: VmHWM, reset through
    /proc/self/clear_refs; elsewhere the peak since the process started).

    Before the reset, memory freed by earlier work is handed back to the OS (gc, then glibc's malloc_trim),
    so a heavy video or eval row does not inflate the next one.
    """

    def reset(self) -> None:
        gc.collect()
        trim()
        try:
            Path("/proc/self/clear_refs").write_text("5")  # Linux >= 4.0: resets VmHWM
        except OSError:
            pass

    def peak_mb(self) -> float:
        """The process's peak resident memory since the last `reset`.

        Returns:
            float: megabytes (MiB): VmHWM from /proc, else getrusage's maximum.
        """
        try:
            match = re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text())
            if match:
                return int(match.group(1)) / 1024
        except OSError:
            pass
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024

"""Memory of this process: hand freed memory back to the system (`trim`) and measure peaks (`PeakMemory`).

The clip loop calls `trim()` after every clip: frames and clip tensors freed by one clip are returned to the
system at once instead of accumulating in a fragmented heap over a long video. (Serving every allocation
≥ 128 KiB by mmap would do the same, but the model's per-window activations then cost a page-fault storm:
2.3x the time of the tiny model on one core.) No effect without glibc.
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
        try:
            match = re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text())
            if match:
                return int(match.group(1)) / 1024
        except OSError:
            pass
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024

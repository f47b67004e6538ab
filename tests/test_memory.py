"""The allocator setting the model runs with: freed blocks are reused instead of paged in again."""

import platform
import resource

import pytest
import torch

from patchvsr.memory import reuse_freed_memory, trim

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")


@glibc
def test_a_freed_large_block_is_reused_without_page_faults():
    """40 MB, above glibc's largest dynamic mmap threshold (32 MiB): without the setting every allocation is a
    fresh mmap whose 10240 pages fault in again; with it the heap settles within a few rounds and then
    reuses the block (the model's activations are allocated and freed like this once per window batch)."""
    assert reuse_freed_memory() is True
    faults = []
    for _ in range(16):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        torch.empty(40 << 20, dtype=torch.uint8).fill_(1)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    assert sum(faults[-4:]) < 1000, faults
    trim()

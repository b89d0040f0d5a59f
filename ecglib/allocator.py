"""The C allocator told to keep the memory torch frees, so that the next batch does not fault it back in.

torch allocates every activation afresh and frees it when the batch is done. glibc's malloc hands a block above its
mmap threshold (128 KiB, raised as such blocks are freed, up to 32 MiB) to the kernel at free, and it trims the
heap's top whenever more than twice that threshold lies free there. A batch frees several activations of the same
size at once, so the heap is trimmed after one batch and grown again, page by page, in the next: on this project's
2-core VM the models' first convolution on a batch of 256 beats (4 to 64 channels, a 12 MB output) took 5,889 page
faults and 7.6 ms a call, and 0 faults and 2.1 ms with the thresholds set (`benchmarks/bench_allocator.py` measures
whole commands). Setting them once, per process, keeps freed memory in the heap for the next batch: blocks up to 32
MiB come from the heap, and up to 128 MiB of free heap is kept. What is larger (a recording's samples, a split's
beats) still goes back at free.

The PyTorch CPU tuning guides get the same from a different allocator (jemalloc, tcmalloc) preloaded; this needs
nothing installed. glibc only (Linux): elsewhere nothing is changed. ``ECGLIB_KEEP_FREED_MEMORY=0`` in the
environment leaves glibc's own behaviour (the benchmark compares the two).
"""
from __future__ import annotations

import ctypes
import os
import platform
import sys

MMAP_THRESHOLD = 32 << 20  # bytes: glibc's own ceiling for its moving threshold (DEFAULT_MMAP_THRESHOLD_MAX)
TRIM_THRESHOLD = 128 << 20  # bytes of free memory the heap's top keeps
ENV = "ECGLIB_KEEP_FREED_MEMORY"

# mallopt's parameter numbers (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds for this process (MMAP_THRESHOLD, TRIM_THRESHOLD), once; later calls
    return the first call's answer. True when they were set; False off glibc, or when ``ECGLIB_KEEP_FREED_MEMORY``
    is 0. The training loop and :func:`ecglib.inference.predict` call it."""
    global _applied
    if _applied is None:
        _applied = _set_thresholds()
    return _applied


def _set_thresholds() -> bool:
    if os.environ.get(ENV, "1").strip() == "0":
        return False
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # Setting either threshold stops glibc moving both, so both are set.
    return mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1

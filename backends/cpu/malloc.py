"""glibc's allocator tuned for training (tune_malloc).

A training step frees and reallocates the same activations and gradients every step; glibc hands
large blocks back to the kernel (munmap, heap trimming), so each step faulted every page in again
(docs/speed.md). It changes the whole process's allocator, so no import and no backend does it:
a program that trains calls it (`tinyllm train` and scripts/bench/bench.py do).
"""
from __future__ import annotations

import sys


def tune_malloc() -> bool:
    """Keep freed array memory in the heap instead of handing it back to the OS: serve blocks up
    to 32 MiB from the heap and trim it only above 256 MiB free. glibc only; returns whether the
    settings were applied."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    ok = mallopt(M_MMAP_THRESHOLD, 32 * 2**20) == 1
    return mallopt(M_TRIM_THRESHOLD, 256 * 2**20) == 1 and ok

"""Host memory figures for checks made before allocating: a data file, a model, a batch of samples.

Such checks turn what would be a MemoryError traceback (or minutes of swapping
before the kernel's OOM killer) into one line naming the size and the memory.
"""
from __future__ import annotations

import os


def human_bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"


def _physical() -> int | None:
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024  # the file gives kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _address_space_left() -> int | None:
    """What is left under an address-space limit (ulimit -v), or None when there is none."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft == resource.RLIM_INFINITY:
            return None
        with open("/proc/self/statm", "rb") as f:
            used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        return max(0, soft - used)
    except (ImportError, OSError, ValueError, IndexError, AttributeError):
        return None


def available_bytes() -> int | None:
    """Memory a new allocation can take without swapping: Linux MemAvailable, lowered by an
    address-space limit (ulimit -v) if one is set; None where unknown."""
    known = [n for n in (_physical(), _address_space_left()) if n is not None]
    return min(known) if known else None


def shortfall(needed: float) -> str | None:
    """None if `needed` bytes fit in the available memory, else '<needed> of memory, <avail> is available'."""
    avail = available_bytes()
    if avail is None or needed <= avail:
        return None
    return f"about {human_bytes(needed)} of memory, and {human_bytes(avail)} is available"

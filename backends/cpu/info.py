"""The CPU's vendor, model name and feature flags, from /proc/cpuinfo (Linux; elsewhere nothing)."""
from __future__ import annotations

import functools


@functools.cache
def cpu_info() -> "tuple[str | None, frozenset]":
    """(model name or None, the first CPU's flags): MKL's kernel branch and the benchmarks' machine line."""
    model, flags = None, frozenset()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, val = line.partition(":")
                if key.strip() == "model name":
                    model = val.strip()
                elif key.strip() == "flags":
                    flags = frozenset(val.split())
                    break
    except OSError:
        pass
    return model, flags


@functools.cache
def cpu_vendor() -> "str | None":
    """The first CPU's vendor_id ("GenuineIntel", "AuthenticAMD", ...), or None where it cannot be read."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, val = line.partition(":")
                if key.strip() == "vendor_id":
                    return val.strip()
    except OSError:
        pass
    return None

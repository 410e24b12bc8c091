"""Large arrays kept from one training step to the next (the cross-entropy's (N, V) gradient: 206 MB
at GPT-2's vocabulary and 1,024 tokens). glibc hands blocks over 32 MiB back to the kernel when they
are freed (malloc.py cannot raise that limit), so a fresh one faults every page in again each step;
one kept and written again does not (docs/speed.md).

An array is handed out again only when nothing but this pool holds it: a gradient that is still alive
(a leaf's .grad, a view kept by the caller) keeps its array, and the caller gets a fresh one, which the
pool keeps from then on. numpy views hold their base, so a view alive anywhere counts as a holder."""
from __future__ import annotations

import sys
import threading

import numpy as np

KEEP_BYTES = 32 * 2**20  # glibc's largest heap block (malloc.py): smaller arrays come from the heap anyway


class Kept:
    """One kept array per (shape, dtype), for arrays of at least KEEP_BYTES."""

    def __init__(self, min_bytes: int = KEEP_BYTES):
        self.min_bytes = min_bytes
        self._arrays: dict = {}
        self._lock = threading.Lock()  # two threads must not both take the one free array

    def empty(self, shape, dtype) -> np.ndarray:
        """An uninitialised array like np.empty(shape, dtype): the kept one when no one else holds it."""
        shape, dtype = tuple(shape), np.dtype(dtype)
        if int(np.prod(shape)) * dtype.itemsize < self.min_bytes:
            return np.empty(shape, dtype)
        key = (shape, dtype.str)
        with self._lock:
            if key in self._arrays and _free(self._arrays, key):
                return self._arrays[key]
            a = np.empty(shape, dtype)
            self._arrays[key] = a  # the one it replaces stays with whoever holds it
            return a

    def clear(self) -> None:
        """Let every kept array go (a holder elsewhere keeps its own)."""
        with self._lock:
            self._arrays.clear()


def _free(arrays: dict, key) -> bool:
    """Whether the dict's reference is the only one left to arrays[key] (getrefcount counts its argument too)."""
    return sys.getrefcount(arrays[key]) == 2

"""Large arrays kept from one training step to the next: the logits, the cross-entropy's (N, V) gradient
(206 MB each at GPT-2's vocabulary and 1,024 tokens), and a large weight gradient of the matmul op (a
linear layer's is made in the optimizer's buffer instead: autograd.ProductGrad). glibc hands
blocks over 32 MiB back to the kernel when they are freed (malloc.py cannot raise that limit), so a
fresh one faults every page in again each step; one kept and written again does not (docs/speed.md).

An array is handed out again only when nothing but this pool holds it: a gradient that is still alive
(a leaf's .grad, a view kept by the caller) keeps its array, and the caller gets a fresh one, which the
pool keeps from then on. numpy views hold their base, so a view alive anywhere counts as a holder."""
from __future__ import annotations

import sys
import threading
from collections import OrderedDict

import numpy as np

KEEP_BYTES = 32 * 2**20  # glibc's largest heap block (malloc.py): smaller arrays come from the heap anyway
PER_SHAPE = 3  # arrays kept of one shape: the logits and their gradient share one (N, V), and a step may hold both
SHAPES = 4  # shapes kept, the latest used: scoring texts of many lengths must not keep an array for each


class Kept:
    """Up to PER_SHAPE kept arrays per (shape, dtype), for arrays of at least KEEP_BYTES."""

    def __init__(self, min_bytes: int = KEEP_BYTES):
        self.min_bytes = min_bytes
        self._arrays: OrderedDict = OrderedDict()  # (shape, dtype) -> [arrays], the latest used last
        self._lock = threading.Lock()  # two threads must not both take the one free array

    def empty(self, shape, dtype) -> np.ndarray:
        """An uninitialised array like np.empty(shape, dtype): a kept one when no one else holds it."""
        shape, dtype = tuple(shape), np.dtype(dtype)
        if int(np.prod(shape)) * dtype.itemsize < self.min_bytes:
            return np.empty(shape, dtype)
        with self._lock:
            kept = self._arrays.setdefault((shape, dtype.str), [])
            self._arrays.move_to_end((shape, dtype.str))
            while len(self._arrays) > SHAPES:
                self._arrays.popitem(last=False)  # the shape used longest ago: its arrays go (a holder keeps its own)
            for i in range(len(kept)):
                if _free(kept, i):
                    return kept[i]
            a = np.empty(shape, dtype)
            if len(kept) < PER_SHAPE:
                kept.append(a)
            return a

    def clear(self) -> None:
        """Let every kept array go (a holder elsewhere keeps its own)."""
        with self._lock:
            self._arrays.clear()


def _free(kept: list, i: int) -> bool:
    """Whether the list's reference is the only one left to kept[i] (getrefcount counts its argument too)."""
    return sys.getrefcount(kept[i]) == 2

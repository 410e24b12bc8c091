"""NumPy on the CPU."""
from __future__ import annotations

import numpy as np
import array_api_compat.numpy as xp_numpy

from ..base import Backend
from .jit import jit_loops
from .kernels import load_fast


class CPUBackend(Backend):
    kind = "cpu"

    def __init__(self):
        super().__init__("cpu", xp_numpy, device="cpu")
        self.fast = load_fast()

    def _from_numpy(self, a):
        return a

    def _to_numpy(self, x):
        return np.array(x, copy=True)  # a read gives an independent host array, as from a GPU

    def _to_numpy_into(self, x, out, wait):
        np.copyto(out, x)  # one pass, no array in between

    def is_array(self, x) -> bool:
        return isinstance(x, np.ndarray)

    def philox_words(self, n: int, seed: int, site: int, step: int):
        """tinyllm.random's words, fused (backends/cpu/philox.py): the same bits, faster."""
        from .philox import philox_words

        return philox_words(n, seed, site, step)

    def scatter_add(self, target, indices, values):
        """In place. With numba, one pass in row order; else sort + reduceat, which sums the duplicate
        rows (faster than np.add.at: docs/speed.md), after which each index appears once, so a
        fancy-indexed += is exact."""
        if indices.shape[0] == 0:
            return target
        jit = jit_loops()
        if (jit is not None and target.dtype in (np.float32, np.float64) and values.dtype == target.dtype
                and target.flags.c_contiguous and indices.dtype == np.int64
                and 0 <= indices.min() and indices.max() < target.shape[0]):  # the loop does not check bounds
            rows = np.ascontiguousarray(values.reshape(values.shape[0], -1))
            jit.scatter_rows(target.reshape(target.shape[0], -1), np.ascontiguousarray(indices), rows)
            return target
        order = np.argsort(indices, kind="stable")
        si = indices[order]
        starts = np.flatnonzero(np.concatenate(([True], si[1:] != si[:-1])))
        target[si[starts]] += np.add.reduceat(values[order], starts, axis=0)
        return target

"""NumPy on the CPU."""
from __future__ import annotations

import numpy as np
import array_api_compat.numpy as xp_numpy

from ..base import Backend
from . import mkl
from .jit import jit_loops
from .kernels import load_fast


SPLIT_WRITES = 1 << 18  # elements from which the engine's gradient writes are cut across threads


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

    def add_into(self, target, value):
        """target += value in place, in pieces across the thread policy's threads when large."""
        if not self._split(target, value):
            target += value
            return target
        t, v = target.reshape(-1), value.reshape(-1)
        threads = self.fast.threads
        threads.run(lambda a, b: np.add(t[a:b], v[a:b], out=t[a:b]), threads.ranges(t.size, t.size))
        return target

    def copy_into(self, target, value) -> None:
        if not self._split(target, value):
            target[...] = value
            return
        t, v = target.reshape(-1), value.reshape(-1)
        threads = self.fast.threads
        threads.run(lambda a, b: np.copyto(t[a:b], v[a:b]), threads.ranges(t.size, t.size))

    def matmul_into(self, target, a, b):
        """target[...] = a @ b: the product made in target itself (MKL's gemm or NumPy's, as the matmul
        kernel makes its products), when target is a C-contiguous float array of the operands' dtype."""
        if (target.flags.c_contiguous and target.dtype.kind == "f" and a.dtype == b.dtype == target.dtype
                and a.ndim == b.ndim == 2 and target.shape == (a.shape[0], b.shape[1])):
            return mkl.matmul2d(a, b, out=target)
        return super().matmul_into(target, a, b)

    @staticmethod
    def _split(target, value) -> bool:
        """Whether a write is worth cutting into pieces (large, both contiguous, no broadcast or cast)."""
        return (isinstance(value, np.ndarray) and target.size >= SPLIT_WRITES and target.shape == value.shape
                and target.dtype == value.dtype and target.flags.c_contiguous and value.flags.c_contiguous)

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

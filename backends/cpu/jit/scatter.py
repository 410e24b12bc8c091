"""The embedding's backward: rows added into a table in one compiled pass, in row order."""
import numpy as np

from .compiler import loop

LOOPS = ("scatter_rows",)


@loop
def scatter_rows(target, idx, values):
    """target[idx[i]] += values[i] for every row i, in row order (so the sums are deterministic);
    target (V, C), idx (N,) within [0, V), values (N, C)."""
    n, c = values.shape
    for i in range(n):
        r = idx[i]
        for j in range(c):
            target[r, j] += values[i, j]


def compile_float32():
    """Compile (or load from the cache) the float32 version, what training runs."""
    x = np.ones((2, 3), dtype=np.float32)
    scatter_rows(x.copy(), np.zeros(2, dtype=np.int64), x)

"""Cross-entropy over rows of logits in numba's loops: the forward keeps each row's log-sum-exp only
(one (N,) array, no (N, V) one), and the backward writes softmax * scale - scale at the target in one
pass over the logits. Each call handles a piece of rows; the thread policy runs pieces at once."""
import math

import numpy as np

from .compiler import loop
from .exp import exp_

LOOPS = ("ce_forward", "ce_backward")


@loop
def ce_forward(z, t, lse, loss, zero):
    """lse[i] = log(sum_j exp(z[i, j])), loss[i] = lse[i] - z[i, t[i]]; z (N, V), t (N,) within [0, V)."""
    n, v = z.shape
    for i in range(n):
        m = z[i, 0]
        for j in range(1, v):
            m = max(m, z[i, j])
        s = zero
        for j in range(v):
            s += exp_(z[i, j] - m)
        lse[i] = math.log(s) + m
        loss[i] = lse[i] - z[i, t[i]]


@loop
def ce_backward(z, t, lse, scale, dz):
    """dz[i, j] = scale[i] * (softmax(z[i])[j] - [j == t[i]])."""
    n, v = z.shape
    for i in range(n):
        li, c = lse[i], scale[i]
        for j in range(v):
            dz[i, j] = exp_(z[i, j] - li) * c
        dz[i, t[i]] -= c


def compile_float32():
    """Compile (or load from the cache) the float32 versions, what training runs."""
    z = np.ones((2, 3), dtype=np.float32)
    t = np.zeros(2, dtype=np.int64)
    lse, loss = np.empty(2, np.float32), np.empty(2, np.float32)
    ce_forward(z, t, lse, loss, np.float32(0.0))
    ce_backward(z, t, lse, lse.copy(), z.copy())

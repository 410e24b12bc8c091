"""Row reductions and spans for the CPU kernels (kernels.py, passes.py, attention.py):
the forms NumPy runs fastest on the short rows a transformer has."""
from __future__ import annotations

import numpy as np


def rowsum(a):
    """Sum over the last axis, keepdims (short rows: a matmul beats np.sum)."""
    return (a @ np.ones(a.shape[-1], dtype=a.dtype))[..., None]


def rowdot(a, b):
    """sum(a * b, axis=-1, keepdims=True) without an (a * b) temporary."""
    return np.vecdot(a, b)[..., None]


def rowmax(a):
    """max over the last axis, keepdims, by halving: whole-array SIMD maximums
    instead of np.max's short strided reduction (faster on 64-wide rows: docs/speed.md)."""
    n = a.shape[-1]
    if n < 8:
        return np.max(a, axis=-1, keepdims=True)
    h = n // 2
    m = np.maximum(a[..., :h], a[..., h:2 * h])  # a new array: safe to update in place
    if n % 2:
        np.maximum(m[..., :1], a[..., -1:], out=m[..., :1])
    while m.shape[-1] > 1:
        n = m.shape[-1]
        h = n // 2
        if n % 2:
            np.maximum(m[..., :1], m[..., -1:], out=m[..., :1])
        m = np.maximum(m[..., :h], m[..., h:2 * h])
    return m


def spans(a, b, step):
    """(i, j) covering range(a, b) in pieces of `step`."""
    return ((i, min(b, i + step)) for i in range(a, b, step))

"""Fused CPU kernels in plain NumPy: fewer passes, fewer temporaries.

The standard-only ops in tinyllm/ops are the reference (they run on the
strict backend); these kernels compute the same values with in-place
updates into buffers the kernel owns, `out=` arguments, and reductions
picked for speed (a matmul with a ones vector sums short rows far faster
than np.sum over a 64-wide last axis). NumPy's float32 exp/tanh are SIMD,
so a handful of whole-array passes beats a scalar JIT loop on this CPU
(numba has no SVML here: its tanh loop ran 4x slower than np.tanh).

Why not numba: measured on this machine (Zen 4, numba 0.61, no SVML), a
numba GELU loop did not vectorize and took 1.6 ms against 0.4 ms for the
NumPy passes below, so the fast path needs nothing beyond NumPy.

Every kernel is dtype-generic (float32 for training, float64 for the
gradient checks) and keeps only what its backward needs.
"""
from __future__ import annotations

import math
import os
import sys

import numpy as np

_GELU_C = math.sqrt(2.0 / math.pi)
_GELU_A = 0.044715


def _rowsum(a):
    """Sum over the last axis, keepdims (short rows: a matmul beats np.sum)."""
    return (a @ np.ones(a.shape[-1], dtype=a.dtype))[..., None]


def _rowdot(a, b):
    """sum(a * b, axis=-1, keepdims=True) without an (a * b) temporary."""
    return np.vecdot(a, b)[..., None]


def _rowmax(a):
    """max over the last axis, keepdims, by halving: whole-array SIMD maximums
    instead of np.max's short strided reduction (3x faster on 64-wide rows)."""
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


class NumpyFast:
    """The fused kernels the ops look for (see backends/base.py: Backend.fast)."""

    name = "numpy"

    def __init__(self):
        self._masks: dict = {}

    # -- GELU (tanh form) -----------------------------------------------------
    def gelu(self, x):
        """-> (out, bwd(g) -> dx). Keeps x and t = tanh(...) for the backward."""
        t = x * x
        t *= _GELU_A
        t += 1.0
        t *= x
        t *= _GELU_C
        np.tanh(t, out=t)  # t = tanh(c (x + a x^3))
        out = t + 1.0
        out *= x
        out *= 0.5

        def bwd(g):
            # d/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 a x^2)
            du = x * x
            du *= 3.0 * _GELU_A
            du += 1.0
            du *= _GELU_C
            r = t * t
            np.subtract(1.0, r, out=r)
            r *= x
            r *= du
            np.add(t, 1.0, out=du)
            r += du
            r *= 0.5
            r *= g
            return r

        return out, bwd

    # -- layer norm over the last axis ---------------------------------------
    def layer_norm(self, x, w, b, eps):
        """-> (out, bwd(g) -> (dx, gw or None, gb or None))."""
        n = x.shape[-1]
        shape = x.shape
        x2 = x.reshape(-1, n)  # (N, C)
        mu = _rowsum(x2)
        mu *= 1.0 / n
        xhat = x2 - mu
        var = _rowdot(xhat, xhat)
        var *= 1.0 / n
        var += eps
        rstd = np.sqrt(var, out=var)
        np.divide(1.0, rstd, out=rstd)  # (N, 1)
        xhat *= rstd
        if w is not None:
            out = xhat * w
            if b is not None:
                out += b
        elif b is not None:
            out = xhat + b
        else:
            out = xhat

        def bwd(g):
            g2 = g.reshape(-1, n)
            ones = np.ones(g2.shape[0], dtype=g2.dtype)
            gw = ones @ (g2 * xhat) if w is not None else None  # column sums by matmul
            gb = ones @ g2 if b is not None else None
            dxhat = g2 * w if w is not None else g2
            a = _rowsum(dxhat)
            a *= 1.0 / n
            c = _rowdot(dxhat, xhat)
            c *= 1.0 / n
            dx = xhat * c
            np.subtract(dxhat, dx, out=dx)
            dx -= a
            dx *= rstd
            return dx.reshape(shape), gw, gb

        return out.reshape(shape), bwd

    # -- softmax + cross-entropy over rows -----------------------------------
    def cross_entropy(self, z, t):
        """z (N, V), t (N,) int -> (loss_rows (N,), bwd(scale_rows (N,)) -> dz)."""
        rows = np.arange(z.shape[0])
        m = np.max(z, axis=-1, keepdims=True)
        e = z - m
        picked = e[rows, t]  # (N,) = z[target] - max
        np.exp(e, out=e)
        s = _rowsum(e)  # (N, 1)
        loss_rows = np.log(s[:, 0]) - picked

        def bwd(scale_rows):
            dz = e * (scale_rows[:, None] / s)  # softmax * scale
            dz[rows, t] -= scale_rows
            return dz

        return loss_rows, bwd

    # -- causal scaled-dot-product attention ---------------------------------
    def _mask_bias(self, tq, tk, dtype):
        """(tq, tk): 0 where query i may see key j (j <= i + tk - tq), -inf elsewhere."""
        key = (tq, tk, dtype)
        m = self._masks.get(key)
        if m is None:
            i = np.arange(tq)[:, None] + (tk - tq)
            j = np.arange(tk)[None, :]
            m = self._masks[key] = np.where(j <= i, 0.0, -np.inf).astype(dtype)
        return m

    def attention(self, q, k, v, causal, scale):
        """q (B, nh, Tq, hs), k, v (B, nh, Tk, hs) -> (out, bwd(g) -> (dq, dk, dv))."""
        tq, tk = q.shape[-2], k.shape[-2]
        kt = np.swapaxes(k, -1, -2)
        p = np.matmul(q * scale, kt)  # (B, nh, Tq, Tk) scores
        if causal:
            p += self._mask_bias(tq, tk, p.dtype)
        p -= _rowmax(p)
        np.exp(p, out=p)
        p /= _rowsum(p)  # probabilities
        out = p @ v  # (B, nh, Tq, hs)

        def bwd(g):
            dv = np.swapaxes(p, -1, -2) @ g  # (B, nh, Tk, hs)
            ds = g @ np.swapaxes(v, -1, -2)  # dP (B, nh, Tq, Tk)
            ds -= _rowdot(ds, p)
            ds *= p
            ds *= scale
            dq = ds @ k
            dk = np.swapaxes(ds, -1, -2) @ q
            return dq, dk, dv

        return out, bwd

    # -- Adam / AdamW, in place ------------------------------------------------
    def adam_step(self, p, g, m, v, lr, b1, b2, eps, wd, t, decoupled):
        """Update p, m, v in place (p, m, v are owned by the optimizer)."""
        if wd and not decoupled:
            g = g + wd * p
        m *= b1
        m += (1.0 - b1) * g
        v *= b2
        tmp = g * g
        tmp *= 1.0 - b2
        v += tmp
        bc1 = 1.0 - b1 ** t
        bc2 = 1.0 - b2 ** t
        np.sqrt(v, out=tmp)
        tmp *= 1.0 / math.sqrt(bc2)
        tmp += eps
        np.divide(m, tmp, out=tmp)
        tmp *= lr / bc1
        if wd and decoupled:
            p *= 1.0 - lr * wd
        p -= tmp


def tune_malloc() -> bool:
    """Keep freed array memory in the heap instead of handing it back to the OS.

    A training step frees and reallocates the same ~100 MB of activations and
    gradients every step. glibc returns large blocks to the kernel (munmap,
    heap trimming), so each step re-faults every page: measured here that was
    ~9,000 page faults and 18 ms of system time in a 67 ms step (cpu-small, one
    thread). Serving blocks up to 32 MiB from the heap and trimming only above
    256 MiB of free space removes all of it. glibc only; TINYLLM_MALLOC_TUNE=0
    turns it off. Returns whether the settings were applied.
    """
    if os.environ.get("TINYLLM_MALLOC_TUNE", "1") == "0" or not sys.platform.startswith("linux"):
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


_TUNED = None


def load_fast():
    """The CPU fast path (NumPy only, so it is always available)."""
    global _TUNED
    if _TUNED is None:
        _TUNED = tune_malloc()
    fast = NumpyFast()
    fast.malloc_tuned = _TUNED
    return fast

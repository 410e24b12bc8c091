"""Layer norm as compiled loops (numba), used by backends/fast_cpu.py when the
optional `[fast]` extra (numba) is installed.

Why: in NumPy a layer norm is ~10 passes over (N, C), each a separate loop
with its own broadcast overhead; PyTorch does one fused pass each way.
Measured here (Xeon AVX-512, one thread, (768, 128) float32, the cpu-small
shape): NumPy's fused passes 204 us forward and 301 back, PyTorch 129 and
220, these loops 117 and 98. numba's loops release the GIL (nogil), so the
rows split across the policy's helper threads without a GIL hand-off per
pass. GELU and attention stay in NumPy: this numba's LLVM has no vector
tanh/exp (no SVML), and NumPy's SIMD ones are faster there.

Floating-point: `reassoc` lets the row sums vectorize (an order of
additions like NumPy's pairwise one, not the same bits), `contract` allows
FMAs; NaN and inf keep IEEE meaning (no nnan/ninf), so a NaN loss is still
seen, and error_model="numpy" makes 1/0 inf instead of an exception.

Compiled on first use (about a second per dtype) and cached on disk
(numba's cache, beside this file or in the user's cache directory).
TINYLLM_NO_JIT=1 or a missing/broken numba keeps the NumPy kernels.
"""
from __future__ import annotations

import math
import os

_FLAGS = dict(nogil=True, cache=True, fastmath={"reassoc", "contract"}, error_model="numpy")
_compiled = None  # (forward, backward) once built; False when numba is not usable


def _build():
    import numba

    @numba.njit(**_FLAGS)
    def forward(x, w, b, out, xhat, rstd, eps):  # pragma: no cover - compiled; tested through the kernel
        """Rows of x (N, C): xhat = (x - mean) * rstd, out = xhat * w + b, rstd (N,) kept."""
        n, c = x.shape
        inv_c = 1.0 / c
        for i in range(n):
            s = x[i, 0] * 0  # the accumulator in x's dtype
            for j in range(c):
                s += x[i, j]
            mu = s * inv_c
            v = s * 0
            for j in range(c):
                d = x[i, j] - mu
                xhat[i, j] = d
                v += d * d
            r = 1.0 / math.sqrt(v * inv_c + eps)
            rstd[i] = r
            for j in range(c):
                h = xhat[i, j] * r
                xhat[i, j] = h
                out[i, j] = h * w[j] + b[j]

    @numba.njit(**_FLAGS)
    def backward(g, xhat, rstd, w, dx, gw, gb):  # pragma: no cover - compiled
        """dx = rstd (g w - mean(g w) - xhat mean(g w xhat)); gw += sum g xhat, gb += sum g over the rows."""
        n, c = g.shape
        inv_c = 1.0 / c
        for i in range(n):
            m = g[i, 0] * 0
            cc = m
            for j in range(c):
                d = g[i, j] * w[j]
                m += d
                cc += d * xhat[i, j]
            m *= inv_c
            cc *= inv_c
            r = rstd[i]
            for j in range(c):
                gj = g[i, j]
                h = xhat[i, j]
                gw[j] += gj * h
                gb[j] += gj
                dx[i, j] = r * (gj * w[j] - m - h * cc)

    import numpy as np

    x = np.ones((2, 3), dtype=np.float32)  # compile (or load) now: a broken numba fails here, not mid-step
    forward(x, x[0], x[0], x.copy(), x.copy(), x[:, 0].copy(), np.float32(1e-5))
    backward(x, x, x[:, 0], x[0], x.copy(), x[0].copy(), x[0].copy())
    return forward, backward


def layer_norm_loops():
    """(forward, backward) compiled loops, or None without a usable numba (or with TINYLLM_NO_JIT=1)."""
    global _compiled
    if _compiled is None:
        _compiled = False
        if os.environ.get("TINYLLM_NO_JIT", "") not in ("", "0"):
            return None
        try:
            _compiled = _build()
        except Exception:  # numba missing, or built against another NumPy: the NumPy kernels serve
            _compiled = False
    return _compiled or None

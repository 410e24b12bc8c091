"""Compiled loops (numba) for the CPU kernels that are many cheap passes in
NumPy: layer norm, GELU and the Adam update (and attention's, built from
backends/jit_attention.py). backends/fast_cpu.py uses them
when the optional `[fast]` extra (numba) is installed, else its NumPy passes.

Why: each NumPy pass is a separate loop over memory with its own call and
broadcast overhead; these do one pass forward and one back. Measured here
(Xeon AVX-512, one thread): layer norm of (768, 128) float32, NumPy 204 us
forward and 301 back, PyTorch 129 and 220, these loops 117 and 98. numba's
loops release the GIL (nogil), so a kernel's rows split across the thread
policy's helpers without a GIL hand-off per pass.

GELU needs tanh, and this numba's LLVM has no vector tanh or exp (no SVML):
a call per element was 15x slower than NumPy's SIMD tanh. So float32 GELU
uses a rational tanh that vectorizes (the odd 13/6 form Eigen uses: GELU's
(1 + tanh) / 2 within 4e-7 of float64's on a grid of inputs past the clamp,
tests/test_fast_paths.py); float64
(the gradient checks) keeps math.tanh.

Floating-point: `reassoc` lets row sums vectorize (an order of additions,
like NumPy's pairwise one, not the same bits), `contract` allows FMAs. NaN
and inf keep their IEEE meaning (no nnan/ninf), so a NaN loss is still
seen, and error_model="numpy" makes 1/0 inf instead of an exception.

Compiled for float32 when the CPU backend is made (seconds the first time,
then loaded from numba's on-disk cache beside this file or in the user's
cache); float64, which only the gradient checks use, on its first call.
TINYLLM_NO_JIT=1, or a numba that is missing or fails, keeps NumPy's passes.
"""
from __future__ import annotations

import math
import os
from types import SimpleNamespace

_FLAGS = dict(nogil=True, cache=True, fastmath={"reassoc", "contract"}, error_model="numpy")
# tanh(x) ~ x P(x^2) / Q(x^2) on [-TANH_CLAMP, TANH_CLAMP] (Eigen's float tanh), +-1 past it
TANH_CLAMP = 7.90531110763549805
_P = (4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05, 5.12229709037114e-08,
      -8.60467152213735e-11, 2.00018790482477e-13, -2.76076847742355e-16)
_Q = (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04, 1.19825839466702e-06)
_loops = None  # the compiled functions once built; False when numba is not usable


def _build():  # pragma: no cover - the bodies are compiled; tests run them through fast_cpu's kernels
    import numba
    import numpy as np
    from numba.core import types
    from numba.extending import overload

    from .fast_cpu import _GELU_A, _GELU_C  # the NumPy kernels' constants (fast_cpu imports this module)

    jit = numba.njit(**_FLAGS)
    p0, p1, p2, p3, p4, p5, p6 = (np.float32(c) for c in _P)
    q0, q1, q2, q3 = (np.float32(c) for c in _Q)
    clamp = np.float32(TANH_CLAMP)
    c1, c3 = np.float32(_GELU_C), np.float32(_GELU_C * _GELU_A)

    @jit
    def ln_forward(x, w, b, out, xhat, rstd, eps, inv_c, one, zero):
        """Rows of x (N, C): xhat = (x - mean) * rstd, out = xhat * w + b, rstd (N,) kept.
        Every constant comes in x's dtype (a Python float would make float32 math float64); zero
        too: accumulators started from `x[i, 0] * 0` kept the loops from vectorizing (2.2x slower)."""
        n, c = x.shape
        for i in range(n):
            s = zero
            for j in range(c):
                s += x[i, j]
            mu = s * inv_c
            v = zero
            for j in range(c):
                d = x[i, j] - mu
                xhat[i, j] = d
                v += d * d
            r = one / math.sqrt(v * inv_c + eps)
            rstd[i] = r
            for j in range(c):
                h = xhat[i, j] * r
                xhat[i, j] = h
                out[i, j] = h * w[j] + b[j]

    @jit
    def ln_backward(g, xhat, rstd, w, dx, gw, gb, inv_c, zero):
        """dx = rstd (g w - mean(g w) - xhat mean(g w xhat)); gw += sum g xhat, gb += sum g over the rows."""
        n, c = g.shape
        for i in range(n):
            m = zero
            cc = zero
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

    def gelu_gate(x):
        """s = (1 + tanh(c (x + a x^3))) / 2: float32 by the rational tanh (below), float64 by math.tanh."""
        return 0.5 + 0.5 * math.tanh(_GELU_C * (x + _GELU_A * x * x * x))

    @overload(gelu_gate, inline="always")
    def _gelu_gate_impl(x):
        if x != types.float32:
            return lambda x: 0.5 + 0.5 * math.tanh(_GELU_C * (x + _GELU_A * x * x * x))

        def gate32(x):
            u = min(max(x * (c1 + c3 * x * x), -clamp), clamp)
            u2 = u * u
            p = ((((((p6 * u2 + p5) * u2 + p4) * u2 + p3) * u2 + p2) * u2 + p1) * u2 + p0) * u
            q = ((q3 * u2 + q2) * u2 + q1) * u2 + q0
            return np.float32(0.5) + np.float32(0.5) * (p / q)
        return gate32

    # GELU's two passes around its gate s: the backward computes s again from x instead of reading
    # a kept copy: the same step time here (in-process A/B at T=512 and T=64) and one activation-sized
    # array less memory per GELU (50 MB of a T=512 cpu-small step)
    @jit
    def gelu_forward(x, out):
        """out = GELU(x) over flat arrays."""
        for i in range(x.size):
            out[i] = x[i] * gelu_gate(x[i])

    @jit
    def gelu_backward(g, x, dx, k1, k3, one):
        """dx = g (s + x (k1 + k3 x^2) s (1 - s)), k1 = 2 c, k3 = 6 c a: the gate computed again from x."""
        for i in range(x.size):
            xi = x[i]
            si = gelu_gate(xi)
            dx[i] = g[i] * (si + xi * (k1 + k3 * xi * xi) * si * (one - si))

    @jit
    def adam(p, g, m, v, b1, b2, omb1, omb2, step_scale, inv_sqrt_bc2, eps, decay, l2):
        """One Adam/AdamW update in place over flat buffers: m, v moments; p -= step_scale m / (sqrt(v / bc2) + eps);
        omb1, omb2 = 1 - b1, 1 - b2; decay = 1 - lr wd (AdamW, else 1), l2 = wd for Adam's gradient term (else 0)."""
        for i in range(p.size):
            gi = g[i] + l2 * p[i]
            mi = m[i] * b1 + gi * omb1
            vi = v[i] * b2 + gi * gi * omb2
            m[i] = mi
            v[i] = vi
            p[i] = p[i] * decay - step_scale * mi / (math.sqrt(vi) * inv_sqrt_bc2 + eps)

    @jit
    def scatter_rows(target, idx, values):
        """target[idx[i]] += values[i] for every row i, in row order (so the sums are deterministic);
        target (V, C), idx (N,) within [0, V), values (N, C)."""
        n, c = values.shape
        for i in range(n):
            r = idx[i]
            for j in range(c):
                target[r, j] += values[i, j]

    # compile (or load) float32 now, what training runs: a broken numba fails here, not in a training
    # step. float64 (the gradient checks) compiles on its first call (cold cache, measured: 5.8 s for
    # float32, 4.8 s more for float64).
    dt = np.float32
    x = np.ones((2, 3), dtype=dt)
    one = dt(1.0)
    ln_forward(x, x[0], x[0], x.copy(), x.copy(), x[:, 0].copy(), one, one, one, dt(0.0))
    ln_backward(x, x, x[:, 0], x[0], x.copy(), x[0].copy(), x[0].copy(), one, dt(0.0))
    f = x.reshape(-1)
    gelu_forward(f, f.copy())
    gelu_backward(f, f, f.copy(), one, one, one)
    adam(f.copy(), f, f.copy(), f.copy(), *[one] * 9)
    scatter_rows(x.copy(), np.zeros(2, dtype=np.int64), x)
    from .jit_attention import build as attention_loops

    return SimpleNamespace(ln_forward=ln_forward, ln_backward=ln_backward, gelu_forward=gelu_forward,
                           gelu_backward=gelu_backward, adam=adam, scatter_rows=scatter_rows, **attention_loops(jit))


def jit_loops():
    """The compiled loops (ln_forward, ln_backward, gelu_forward, gelu_backward, adam, scatter_rows, and attention's
    of backends/jit_attention.py), or None
    without a usable numba or with TINYLLM_NO_JIT=1."""
    global _loops
    if _loops is None:
        _loops = False
        if os.environ.get("TINYLLM_NO_JIT", "") not in ("", "0"):
            return None
        try:
            _loops = _build()
        except Exception:  # numba missing, or built against another NumPy: NumPy's passes serve
            _loops = False
    return _loops or None

"""Layer norm over rows in one compiled pass each way.

Every constant comes in x's dtype from the caller (a Python float would make float32 math
float64); zero too: accumulators started from `x[i, 0] * 0` kept the loops from vectorizing.
"""
import math

import numpy as np

from .compiler import loop

LOOPS = ("ln_forward", "ln_backward")


@loop
def ln_forward(x, w, b, out, xhat, rstd, eps, inv_c, one, zero):
    """Rows of x (N, C): xhat = (x - mean) * rstd, out = xhat * w + b, rstd (N,) kept."""
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


@loop
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


def compile_float32():
    """Compile (or load from the cache) the float32 versions, what training runs."""
    dt = np.float32
    x = np.ones((2, 3), dtype=dt)
    one = dt(1.0)
    ln_forward(x, x[0], x[0], x.copy(), x.copy(), x[:, 0].copy(), one, one, one, dt(0.0))
    ln_backward(x, x, x[:, 0], x[0], x.copy(), x[0].copy(), x[0].copy(), one, dt(0.0))

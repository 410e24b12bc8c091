"""The NumPy passes behind GELU, layer norm, cross-entropy and the Adam update when numba's loops are not there
(TINYLLM_NO_JIT, or no [fast] extra): in-place passes into buffers the kernel owns, over chunks
that stay in L2 (CHUNK), the chunks split across the thread policy's threads."""
from __future__ import annotations

import math

import numpy as np

from .jit.constants import GELU_A, GELU_C
from .rows import spans

CHUNK = 1 << 16  # elements per elementwise pass: a chunk's temporaries stay in L2


def gelu(threads, x):
    """GELU keeping x and s = (1 + tanh(u)) / 2 for the backward; 8 passes forward, 9 back."""
    shape = x.shape
    xf = x.reshape(-1)
    s, out = np.empty_like(xf), np.empty_like(xf)

    def forward(a, b):
        for i in range(a, b, CHUNK):
            j = min(b, i + CHUNK)
            xi, si = xf[i:j], s[i:j]
            np.multiply(xi, xi, out=si)
            si *= GELU_C * GELU_A
            si += GELU_C
            si *= xi
            np.tanh(si, out=si)  # tanh(c (x + a x^3))
            si *= 0.5
            si += 0.5
            np.multiply(xi, si, out=out[i:j])

    parts = threads.ranges(xf.size, xf.size)
    threads.run(forward, parts)

    def backward(g):
        gf = g.reshape(-1)
        r = np.empty_like(xf)

        def grad(a, b):
            # d/dx = s + x (1 - t^2) c (1 + 3 a x^2) / 2 = s + 2 c x (1 + 3 a x^2) s (1 - s)
            p = np.empty(min(CHUNK, b - a), dtype=xf.dtype)
            for i in range(a, b, CHUNK):
                j = min(b, i + CHUNK)
                xi, si, ri, pi = xf[i:j], s[i:j], r[i:j], p[:j - i]
                np.multiply(xi, xi, out=pi)
                pi *= 6.0 * GELU_C * GELU_A
                pi += 2.0 * GELU_C
                pi *= xi
                np.subtract(1.0, si, out=ri)
                ri *= si
                ri *= pi
                ri += si
                ri *= gf[i:j]

        threads.run(grad, parts)
        return (r.reshape(shape),)

    return out.reshape(shape), backward


def layer_norm(threads, x, w, bias, eps):
    """Layer norm over the last axis in row chunks that stay in cache. Row means ride in matmuls
    (x @ 1/n), and the backward folds rstd into its row factors: 5 passes over (N, C) each way."""
    shape, n = x.shape, x.shape[-1]
    x2 = x.reshape(-1, n)  # (N, C)
    xhat = np.empty_like(x2)
    rstd = np.empty(x2.shape[0], dtype=x2.dtype)  # (N,)
    out = xhat if w is None and bias is None else np.empty_like(x2)
    mean_of = np.full(n, 1.0 / n, dtype=x2.dtype)  # rows @ mean_of: row means by matmul
    step = max(1, 2 * CHUNK // n)  # rows per chunk (cheap passes: twice GELU's chunk)

    def forward(a, b):
        for i, j in spans(a, b, step):
            xs, xh, rs = x2[i:j], xhat[i:j], rstd[i:j]
            np.subtract(xs, (xs @ mean_of)[:, None], out=xh)
            np.vecdot(xh, xh, out=rs)
            rs *= 1.0 / n
            rs += eps
            np.sqrt(rs, out=rs)
            np.divide(1.0, rs, out=rs)
            xh *= rs[:, None]
            if w is not None:
                np.multiply(xh, w, out=out[i:j])
                if bias is not None:
                    out[i:j] += bias
            elif bias is not None:
                np.add(xh, bias, out=out[i:j])

    parts = threads.ranges(x2.shape[0], x2.size)
    threads.run(forward, parts)

    def backward(g):
        g2 = g.reshape(-1, n)
        dx = np.empty_like(x2)
        sums = {}  # part start -> (column sums of g * xhat, of g) over the part's rows

        def grad(a, b):
            sums[a] = _layer_norm_grad(g2[a:b], xhat[a:b], rstd[a:b], w, bias is not None, dx[a:b], step, mean_of)

        threads.run(grad, parts)  # the parts' sums added in their order, not in the order they finished
        gw = sum(sums[a][0] for a, _ in parts) if w is not None else None
        gb = sum(sums[a][1] for a, _ in parts) if bias is not None else None
        return dx.reshape(shape), gw, gb

    return out.reshape(shape), backward


def _layer_norm_grad(g2, xhat, rstd, w, has_bias, dx, step, mean_of):
    """dx of some rows, chunk by chunk, into dx; -> (their column sums of g * xhat or None, of g or None)."""
    rows, n = g2.shape
    tmp = np.empty((min(step, rows), n), dtype=g2.dtype)
    gw = np.zeros(n, dtype=g2.dtype) if w is not None else None
    gb = np.zeros(n, dtype=g2.dtype) if has_bias else None
    ones = np.ones(min(step, rows), dtype=g2.dtype) if has_bias else None  # row sums as a gemv
    for i, j in spans(0, rows, step):
        gs, xh, d, t, rs = g2[i:j], xhat[i:j], dx[i:j], tmp[:j - i], rstd[i:j]
        if w is not None:
            gw += np.einsum("ij,ij->j", gs, xh)  # column sums of g * xhat in one pass
            np.multiply(gs, w, out=d)  # d = dxhat
        else:
            d[...] = gs
        if has_bias:
            gb += ones[:j - i] @ gs
        # dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)), rstd folded into the row factors
        m = d @ mean_of  # (r,) mean(dxhat)
        m *= rs
        c = np.vecdot(d, xh)  # (r,) n mean(dxhat xhat)
        c *= rs
        c *= 1.0 / n
        np.einsum("ij,i->ij", xh, c, out=t)  # faster than a broadcast multiply
        d *= rs[:, None]
        d -= t
        d -= m[:, None]
    return gw, gb


def adam(threads, p, g, m, v, lr, b1, b2, eps, wd, bc1, bc2, decoupled):
    """Adam / AdamW on flat buffers in place, all passes over one chunk while it is in cache: the same
    operations in the same order as one pass over everything."""
    def update(a, b):
        buf = np.empty(min(CHUNK, b - a), dtype=p.dtype)
        for i, j in spans(a, b, CHUNK):
            pi, gi, mi, vi, tmp = p[i:j], g[i:j], m[i:j], v[i:j], buf[:j - i]
            if wd and not decoupled:
                gi = gi + wd * pi
            mi *= b1
            np.multiply(gi, 1.0 - b1, out=tmp)
            mi += tmp
            vi *= b2
            np.multiply(gi, gi, out=tmp)
            tmp *= 1.0 - b2
            vi += tmp
            np.sqrt(vi, out=tmp)
            tmp *= 1.0 / math.sqrt(bc2)
            tmp += eps
            np.divide(mi, tmp, out=tmp)
            tmp *= lr / bc1
            if wd and decoupled:
                pi *= 1.0 - lr * wd
            pi -= tmp

    threads.run(update, threads.ranges(p.size, 4 * p.size))


def _row_chunks(a: int, b: int, v: int):
    """(i, j) cutting rows a..b into chunks of about CHUNK elements of a (rows, v) array."""
    step = max(1, CHUNK // max(1, v))
    for i in range(a, b, step):
        yield i, min(b, i + step)


def ce_forward(z, t, lse, loss):
    """Per row of z (N, V): lse = log(sum(exp(z))), loss = lse - z[target], a chunk of rows at a time."""
    buf = np.empty((max(1, CHUNK // max(1, z.shape[1])), z.shape[1]), z.dtype)
    for i, j in _row_chunks(0, z.shape[0], z.shape[1]):
        zi, e = z[i:j], buf[:j - i]
        m = zi.max(axis=1)
        np.subtract(zi, m[:, None], out=e)
        np.exp(e, out=e)
        np.log(e.sum(axis=1), out=lse[i:j])
        lse[i:j] += m
        np.subtract(lse[i:j], zi[np.arange(j - i), t[i:j]], out=loss[i:j])


def ce_backward(z, t, lse, scale, dz):
    """dz = scale * (softmax(z) - onehot(t)), a chunk of rows at a time."""
    for i, j in _row_chunks(0, z.shape[0], z.shape[1]):
        di = dz[i:j]
        np.subtract(z[i:j], lse[i:j, None], out=di)
        np.exp(di, out=di)
        di *= scale[i:j, None]
        di[np.arange(j - i), t[i:j]] -= scale[i:j]

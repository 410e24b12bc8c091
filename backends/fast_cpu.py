"""Fused CPU kernels in plain NumPy: fewer passes, fewer temporaries.

Each kernel has the signature written down in backends/kernels.py and the
same values as the op's standard-only reference in tinyllm/ops (which the
strict backend runs); tests/test_fast_paths.py holds every kernel here to
its reference. They use in-place updates into buffers the kernel owns,
`out=` arguments, and reductions picked for speed (a matmul with a ones
vector sums short rows far faster than np.sum over a 64-wide last axis).
Every kernel is dtype-generic (float32 for training, float64 for the
gradient checks) and keeps only what its backward needs.

With numba installed (the [fast] extra), layer norm, GELU and the Adam
update run as one-pass compiled loops instead, and so do attention's passes
between its matmuls (backends/jit_cpu.py, backends/jit_attention.py; GELU's
float32 tanh is a rational form that vectorizes, as numba's tanh call did
not: 15 ms for a (768, 512) array where NumPy's passes take 1.1). numexpr
2.14 was measured and left out: 13-17 ms for that GELU (no VML in its
wheel) and 2.2 ms for `x*x*a + y*x + 1` against NumPy's 1.0. NumPy's own
SIMD tanh/exp run at about 0.5 ns an element; each pass here runs over a
chunk that stays in L2 (CHUNK).

Attention is blocked (flash-style) once the context is longer than one
block: the (Tq, Tk) score matrix is never held whole, the forward keeps only
each row's log-sum-exp, and the backward recomputes a block of scores at a
time, so memory grows linearly with the context; fully masked blocks of a
causal mask are skipped, which also halves the work.

Threads follow one policy (backends/threads.py), refreshed from the matmul
kernel: BLAS splits the matmuls over the threads the policy allows, and every
other kernel here splits its rows (attention: its (batch, head) pairs) into
one part per thread and runs the parts at once on the policy's helper
threads, BLAS at one thread inside each part.
"""
from __future__ import annotations

import math
import sys

import numpy as np

from .jit_cpu import jit_loops
from .mkl_gemm import gemm_available, matmul2d
from .threads import ThreadPolicy

_GELU_C = math.sqrt(2.0 / math.pi)
_GELU_A = 0.044715
ATTENTION_BLOCK = 64  # query/key rows per attention block (contexts up to this run unblocked)
SHIFT_BOUND = 40.0  # largest score bound used as softmax's shift (see _score_shift)
CHUNK = 1 << 16  # elements per elementwise pass: a chunk's temporaries stay in L2
GROUP_BYTES = 1 << 20  # attention: the score blocks of a group of (batch, head) pairs held in L2 at once


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


def _spans(a, b, step):
    """(i, j) covering range(a, b) in pieces of `step`."""
    return ((i, min(b, i + step)) for i in range(a, b, step))


def _unbroadcast(g, shape):
    """Sum g down to `shape`, undoing broadcasting over leading or size-1 axes."""
    if g.shape == tuple(shape):
        return g
    extra = g.ndim - len(shape)
    if extra > 0:
        g = g.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g


def _mask_out(s, visible):
    """s[..., i, j] = -inf where visible[i, j] is False (visible broadcasts over leading axes)."""
    np.copyto(s, -np.inf, where=~visible)


class NumpyFast:
    """The fused kernels of backends/kernels.py for NumPy, and the thread policy they run under."""

    def __init__(self, threads: ThreadPolicy | None = None):
        gemm_available()  # MKL, if installed, loads first: the thread policy then sizes its pool too
        self.threads = threads if threads is not None else ThreadPolicy()
        self.jit = jit_loops()  # numba's one-pass loops for layer norm, GELU and Adam, or None: NumPy passes

    @property
    def name(self) -> str:
        name = "numpy + numba loops" if self.jit is not None else "numpy"
        return name + " + MKL matmuls" if gemm_available() else name

    # -- matmul: BLAS splits it across the policy's threads; 2-D products by MKL when installed (mkl_gemm.py)
    def matmul(self, xp, a, b):
        self.threads.refresh()  # sizes the BLAS pool to the cores free now
        if b.ndim == 2:  # (..., K) @ (K, N): one (rows, K) @ (K, N) matmul
            lead, (k, n) = a.shape[:-1], b.shape
            a2 = a.reshape(-1, k)

            def folded_backward(g, need=(True, True)):
                g2 = g.reshape(-1, n)
                ga = matmul2d(g2, b.T).reshape(lead + (k,)) if need[0] else None
                gb = matmul2d(a2.T, g2) if need[1] else None  # (K, N): the weight's gradient
                return ga, gb

            return matmul2d(a2, b).reshape(lead + (n,)), folded_backward

        def backward(g, need=(True, True)):
            ga = _unbroadcast(g @ np.swapaxes(b, -1, -2), a.shape) if need[0] else None
            gb = _unbroadcast(np.swapaxes(a, -1, -2) @ g, b.shape) if need[1] else None
            return ga, gb

        return a @ b, backward

    # -- GELU (tanh form) -----------------------------------------------------
    def gelu(self, xp, x):
        """Keeps x and s = (1 + tanh(u)) / 2 for the backward; 8 passes forward, 9 back,
        each over a chunk that stays in cache, the chunks split across the threads."""
        if self.jit is not None:
            return self._gelu_loops(x)
        shape = x.shape
        xf = x.reshape(-1)
        s, out = np.empty_like(xf), np.empty_like(xf)

        def forward(a, b):
            for i in range(a, b, CHUNK):
                j = min(b, i + CHUNK)
                xi, si = xf[i:j], s[i:j]
                np.multiply(xi, xi, out=si)
                si *= _GELU_C * _GELU_A
                si += _GELU_C
                si *= xi
                np.tanh(si, out=si)  # tanh(c (x + a x^3))
                si *= 0.5
                si += 0.5
                np.multiply(xi, si, out=out[i:j])

        parts = self.threads.ranges(xf.size, xf.size)
        self.threads.run(forward, parts)

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
                    pi *= 6.0 * _GELU_C * _GELU_A
                    pi += 2.0 * _GELU_C
                    pi *= xi
                    np.subtract(1.0, si, out=ri)
                    ri *= si
                    ri *= pi
                    ri += si
                    ri *= gf[i:j]

            self.threads.run(grad, parts)
            return (r.reshape(shape),)

        return out.reshape(shape), backward

    def _gelu_loops(self, x):
        """GELU as numba's one pass each way (backends/jit_cpu.py), parts across the threads."""
        shape, xf = x.shape, np.ascontiguousarray(x).reshape(-1)
        s, out = np.empty_like(xf), np.empty_like(xf)
        parts = self.threads.ranges(xf.size, xf.size)
        self.threads.run(lambda a, b: self.jit.gelu_forward(xf[a:b], out[a:b], s[a:b]), parts)

        def backward(g):
            gf = np.ascontiguousarray(g, dtype=xf.dtype).reshape(-1)
            r = np.empty_like(xf)
            k1, k3, one = (xf.dtype.type(c) for c in (2.0 * _GELU_C, 6.0 * _GELU_C * _GELU_A, 1.0))
            self.threads.run(lambda a, b: self.jit.gelu_backward(gf[a:b], xf[a:b], s[a:b], r[a:b], k1, k3, one), parts)
            return (r.reshape(shape),)

        return out.reshape(shape), backward

    # -- layer norm over the last axis ---------------------------------------
    def layer_norm(self, xp, x, w, b, eps):
        if self.jit is None:
            return self._layer_norm_passes(x, w, b, eps)
        forward, grad_rows = self.jit.ln_forward, self.jit.ln_backward
        shape, n = x.shape, x.shape[-1]
        x2 = np.ascontiguousarray(x.reshape(-1, n))  # (N, C)
        wv = np.ones(n, x2.dtype) if w is None else np.ascontiguousarray(w, dtype=x2.dtype)
        bv = np.zeros(n, x2.dtype) if b is None else np.ascontiguousarray(b, dtype=x2.dtype)
        out, xhat = np.empty_like(x2), np.empty_like(x2)
        rstd = np.empty(x2.shape[0], dtype=x2.dtype)  # (N,)
        e, inv_n, one, zero = (x2.dtype.type(c) for c in (eps, 1.0 / n, 1.0, 0.0))  # constants in x's dtype
        parts = self.threads.ranges(x2.shape[0], 2 * x2.size)

        def fwd(i, j):
            forward(x2[i:j], wv, bv, out[i:j], xhat[i:j], rstd[i:j], e, inv_n, one, zero)

        self.threads.run(fwd, parts)

        def backward(g):
            g2 = np.ascontiguousarray(g.reshape(-1, n), dtype=x2.dtype)
            dx = np.empty_like(x2)
            sums = {i: (np.zeros(n, x2.dtype), np.zeros(n, x2.dtype)) for i, _ in parts}  # per part: gw, gb

            def grad(i, j):
                grad_rows(g2[i:j], xhat[i:j], rstd[i:j], wv, dx[i:j], *sums[i], inv_n, zero)

            self.threads.run(grad, parts)
            gw = sum(v[0] for v in sums.values()) if w is not None else None
            gb = sum(v[1] for v in sums.values()) if b is not None else None
            return dx.reshape(shape), gw, gb

        return out.reshape(shape), backward

    def _layer_norm_passes(self, x, w, b, eps):
        """Without numba: rows in chunks that stay in cache, the chunks split across the threads. Row
        means ride in matmuls (x @ 1/n), the weight's gradient is one einsum pass, and
        the backward folds rstd into its row factors: 5 passes over (N, C) forward, 5 back."""
        shape, n = x.shape, x.shape[-1]
        bias = b
        x2 = x.reshape(-1, n)  # (N, C)
        xhat = np.empty_like(x2)
        rstd = np.empty(x2.shape[0], dtype=x2.dtype)  # (N,)
        out = xhat if w is None and bias is None else np.empty_like(x2)
        mean_of = np.full(n, 1.0 / n, dtype=x2.dtype)  # rows @ mean_of: row means by matmul
        step = max(1, 2 * CHUNK // n)  # rows per chunk (cheap passes: twice GELU's chunk)

        def forward(a, b):
            for i, j in _spans(a, b, step):
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

        parts = self.threads.ranges(x2.shape[0], x2.size)
        self.threads.run(forward, parts)

        def backward(g):
            g2 = g.reshape(-1, n)
            dx = np.empty_like(x2)
            sums = {}  # part start -> (column sums of g * xhat, of g) over the part's rows

            def grad(a, b):
                tmp = np.empty((min(step, b - a), n), dtype=x2.dtype)
                gw = np.zeros(n, dtype=x2.dtype) if w is not None else None
                gb = np.zeros(n, dtype=x2.dtype) if bias is not None else None
                ones = np.ones(min(step, b - a), dtype=x2.dtype) if bias is not None else None  # row sums as a gemv
                for i, j in _spans(a, b, step):
                    gs, xh, d, t, rs = g2[i:j], xhat[i:j], dx[i:j], tmp[:j - i], rstd[i:j]
                    if w is not None:
                        gw += np.einsum("ij,ij->j", gs, xh)  # column sums of g * xhat in one pass
                        np.multiply(gs, w, out=d)  # d = dxhat
                    else:
                        d[...] = gs
                    if bias is not None:
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
                sums[a] = (gw, gb)

            self.threads.run(grad, parts)
            gw = sum(v[0] for v in sums.values()) if w is not None else None
            gb = sum(v[1] for v in sums.values()) if bias is not None else None
            return dx.reshape(shape), gw, gb

        return out.reshape(shape), backward

    # -- softmax + cross-entropy over rows -----------------------------------
    def cross_entropy(self, xp, z, t):
        rows = np.arange(z.shape[0])
        m = np.max(z, axis=-1, keepdims=True)
        e = z - m
        picked = e[rows, t]  # (N,) = z[target] - max
        np.exp(e, out=e)
        s = _rowsum(e)  # (N, 1)
        loss_rows = np.log(s[:, 0]) - picked

        def backward(scale_rows):
            dz = e * (scale_rows[:, None] / s)  # softmax * scale
            dz[rows, t] -= scale_rows
            return (dz,)

        return loss_rows, backward

    # -- scaled-dot-product attention ----------------------------------------
    def attention(self, xp, q, k, v, mask, scale):
        """Over the (batch, head) pairs, a few at a time: each group's blocks of scores stay in
        cache through all the passes over them (all 48 pairs of a T=512 cpu-small step at once
        spilled ~6 MB per pass to L3; in-process A/B, 1 thread, fwd/bwd per call: 37.9/76.4 ms
        at once, 32.6/65.7 in groups of 1 MiB). The groups are split across the threads; each
        runs whole or blocked."""
        part_fn = _attention_whole if q.shape[-2] <= ATTENTION_BLOCK else _attention_blocked
        lead, (tq, hs), tk = q.shape[:-2], q.shape[-2:], k.shape[-2]
        q3, k3, v3 = (np.ascontiguousarray(a.reshape((-1,) + a.shape[-2:])) for a in (q, k, v))  # (B*nh, T, hs)
        out = np.empty(q3.shape[:-1] + v3.shape[-1:], dtype=q.dtype)  # (B*nh, Tq, hs)
        held = tq * tk if part_fn is _attention_whole else 2 * ATTENTION_BLOCK * tk  # score elements a pair holds
        group = max(1, GROUP_BYTES // (held * q.itemsize))  # pairs per group
        backwards = {}

        def forward(a, b):
            backwards[a] = [(i, j, part_fn(q3[i:j], k3[i:j], v3[i:j], mask, scale, out[i:j], self.jit))
                            for i, j in _spans(a, b, group)]

        parts = self.threads.ranges(q3.shape[0], q.size * tk // hs)
        self.threads.run(forward, parts)

        def backward(g):
            g3 = g.reshape(out.shape)
            dq, dk, dv = np.empty_like(q3), np.empty_like(k3), np.empty_like(v3)

            def grad(a, b):
                for i, j, bw in backwards[a]:
                    bw(g3[i:j], dq[i:j], dk[i:j], dv[i:j])

            self.threads.run(grad, parts)
            return dq.reshape(q.shape), dk.reshape(k.shape), dv.reshape(v.shape)

        return out.reshape(lead + (tq, v.shape[-1])), backward

    # -- Adam / AdamW, in place ------------------------------------------------
    def adam_step(self, p, g, m, v, lr, b1, b2, eps, wd, t, decoupled):
        """Update p, m, v in place (p, m, v are owned by the optimizer): all passes over one
        chunk while it is in cache (the flat buffers are several MB), the chunks split across
        the threads. The same operations in the same order as one pass over everything."""
        bc1 = 1.0 - b1 ** t
        bc2 = 1.0 - b2 ** t
        p, g, m, v = (a.reshape(-1) for a in (p, g, m, v))
        if self.jit is not None:  # one pass (numba): the same operations, FMAs allowed
            consts = [p.dtype.type(c) for c in (b1, b2, 1.0 - b1, 1.0 - b2, lr / bc1, 1.0 / math.sqrt(bc2), eps,
                                                1.0 - lr * wd if decoupled else 1.0, 0.0 if decoupled else wd)]
            g = np.ascontiguousarray(g, dtype=p.dtype)
            self.threads.run(lambda a, b: self.jit.adam(p[a:b], g[a:b], m[a:b], v[a:b], *consts),
                             self.threads.ranges(p.size, 4 * p.size))
            return

        def update(a, b):
            buf = np.empty(min(CHUNK, b - a), dtype=p.dtype)
            for i, j in _spans(a, b, CHUNK):
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

        self.threads.run(update, self.threads.ranges(p.size, 4 * p.size))


def _aug(a, col):
    """[a, col] along the last axis, contiguous: (..., T, d) -> (..., T, d + 1)."""
    out = np.empty(a.shape[:-1] + (a.shape[-1] + 1,), dtype=a.dtype)
    out[..., :-1] = a
    out[..., -1:] = col
    return out


def _aug_t(a, row):
    """[a^T; row^T], contiguous: (..., T, d) and row (..., T, 1) or a number -> (..., d + 1, T)."""
    out = np.empty(a.shape[:-2] + (a.shape[-1] + 1, a.shape[-2]), dtype=a.dtype)
    out[..., :-1, :] = np.swapaxes(a, -1, -2)
    out[..., -1:, :] = np.swapaxes(row, -1, -2) if np.ndim(row) else row
    return out


def _score_shift(qs, k):
    """A shift per query row that no score of the row exceeds, or None.

    |q . k| <= |q| max|k| (Cauchy-Schwarz) bounds each row's scores without
    computing them, so softmax needs no row max: while the bound is at most
    SHIFT_BOUND, exp(score - bound) >= exp(-2 SHIFT_BOUND) stays a normal
    float32 and nothing underflows. Past it the kernels take the exact row max.
    """
    bound = np.sqrt(np.vecdot(qs, qs))[..., None]  # (B, nh, Tq, 1)
    bound *= np.sqrt(np.max(np.vecdot(k, k), axis=-1))[..., None, None]
    return bound if float(np.max(bound, initial=0.0)) <= SHIFT_BOUND else None


def _softmax_rows(s, shift):
    """exp(s - shift) in place, shift None: the row max; -> (row sums, the shift used)."""
    if shift is None:
        shift = _rowmax(s)
        s -= shift
    np.exp(s, out=s)
    return _rowsum(s), shift


def _attention_whole(q, k, v, mask, scale, out, jit=None):
    """Short contexts: the whole (Tq, Tk) matrix of exp(scores - shift), kept for the backward.
    Writes the output into `out`; returns backward(g, dq, dk, dv), which fills dq, dk, dv.
    Shifts and row scalings ride in the matmuls ([q, -shift] @ [k, 1]^T = q k^T - shift),
    so the (Tq, Tk) matrix is never normalized, subtracted from or reduced.
    With numba (jit), the passes between the matmuls are its loops (backends/jit_attention.py)."""
    tq, tk = q.shape[-2], k.shape[-2]
    if jit is not None:
        qa, kat, shift, shifted = _jit_prep(jit, q, k, scale)
        e = qa @ kat  # (G, Tq, Tk) scores, shifted
        total = np.empty(shift.shape, dtype=q.dtype)  # (G, Tq)
        jit.att_softmax(e, tk - tq + 1 if mask is not None else tk, shifted, shift, 0, total, q.dtype.type(0))
        inv = np.divide(1.0, total, out=total)[..., None]  # (G, Tq, 1)
    else:
        qs = q * scale
        shift = _score_shift(qs, k)
        e = _aug(qs, -shift if shift is not None else 0.0) @ _aug_t(k, 1.0)  # (B, nh, Tq, Tk) shifted scores
        if mask is not None:
            _mask_out(e, mask)
        total, _ = _softmax_rows(e, shift)  # e = P * total
        inv = np.divide(1.0, total, out=total)  # (B, nh, Tq, 1)
    np.matmul(e, v, out=out)
    out *= inv  # (B, nh, Tq, hs)

    def backward(g, dq, dk, dv):
        if jit is not None:  # gi = g / total, gia = [gi scale, d] and vat = [v^T; 1] in one pass
            (g_, _, hs), dt = q.shape, q.dtype
            gi, gia, vat = np.empty_like(q), np.empty((g_, tq, hs + 1), dt), np.empty((g_, hs + 1, tk), dt)
            # total holds 1 / the row sums by now (inv is a view of it)
            jit.att_whole_bwd_prep(np.ascontiguousarray(g), out, total, v, dt.type(scale), gi, gia, vat, dt.type(0))
        else:
            gi = g * inv  # g / total
            d = _rowdot(g, out)  # rowsum(P * dP) = g . out per query
            d *= inv
            d *= -scale
            gia, vat = _aug(gi * scale, d), _aug_t(v, 1.0)
        np.matmul(np.swapaxes(e, -1, -2), gi, out=dv)  # P^T g = e^T gi (B, nh, Tk, hs)
        ds = gia @ vat  # (dP - rowsum(P dP)) * scale / total
        ds *= e  # dS * scale
        np.matmul(ds, k, out=dq)
        np.matmul(np.swapaxes(ds, -1, -2), q, out=dk)

    return backward


def _jit_prep(jit, q, k, scale):
    """numba's one pass: qa = [q scale, -shift] (G, Tq, hs + 1), kat = [k^T; 1] (G, hs + 1, Tk),
    shift (G, Tq) and whether it is in qa. When the bound is too large to shift by (see
    _score_shift), qa's shift column is 0 and the softmax takes each row's max instead."""
    g_, tq, hs = q.shape
    qa = np.empty((g_, tq, hs + 1), dtype=q.dtype)
    kat = np.empty((g_, hs + 1, k.shape[-2]), dtype=q.dtype)
    shift = np.empty((g_, tq), dtype=q.dtype)
    top = jit.att_prep(q, k, q.dtype.type(scale), qa, kat, shift, q.dtype.type(0))
    if top <= SHIFT_BOUND:
        return qa, kat, shift, True
    qa[..., -1] = 0.0  # too large (or NaN): exact row maxima instead
    return qa, kat, shift, False


def _attention_blocked(q, k, v, mask, scale, out, jit=None, blk=None):
    """Flash-style: the forward over blocks of queries, the backward over blocks of
    keys, each computing its (blk, Tk) or (blk, Tq) scores afresh; only the
    per-row log-sum-exp is kept. A causal mask skips the blocks it hides whole.
    Every matmul takes contiguous operands, the shifts (softmax's, the backward's
    log-sum-exp and rowsum(P dP)) riding in them as an extra column.
    With numba (jit), the passes between the matmuls are its loops (backends/jit_attention.py).
    Writes into `out`; returns backward(g, dq, dk, dv) as _attention_whole does."""
    blk = blk or ATTENTION_BLOCK
    tq, tk = q.shape[-2], k.shape[-2]
    off = tk - tq  # under the mask, query i sees key j when j <= i + off
    if jit is not None:
        qa, kat, shift, shifted = _jit_prep(jit, q, k, scale)
        lse = np.empty(shift.shape, dtype=q.dtype)  # (G, Tq)
    else:
        qs = q * scale  # (B, nh, Tq, hs)
        shift = _score_shift(qs, k)
        qa = _aug(qs, -shift if shift is not None else 0.0)  # (B, nh, Tq, hs + 1)
        kat = _aug_t(k, 1.0)  # (B, nh, hs + 1, Tk)
        lse = np.empty(q.shape[:-1] + (1,), dtype=q.dtype)  # (B, nh, Tq, 1)
    for i0 in range(0, tq, blk):
        i1 = min(tq, i0 + blk)
        kend = tk if mask is None else min(tk, i1 + off)  # keys past kend are hidden from the whole block
        s = qa[..., i0:i1, :] @ kat[..., :kend]  # (B, nh, bq, kend)
        if jit is not None:  # mask + exp + row sums in one pass, then out /= total and lse in another
            total = np.empty(s.shape[:-1], dtype=q.dtype)  # (G, bq)
            jit.att_softmax(s, kend if mask is None else i0 + off + 1, shifted, shift, i0, total, q.dtype.type(0))
            np.matmul(s, v[..., :kend, :], out=out[..., i0:i1, :])
            jit.att_finish(out, i0, total, shift, lse, q.dtype.type(1))
            continue
        c0 = max(0, i0 + off + 1)  # keys before c0 are visible to every query of the block
        if mask is not None and c0 < kend:
            _mask_out(s[..., c0:kend], mask[i0:i1, c0:kend])
        total, m = _softmax_rows(s, None if shift is None else shift[..., i0:i1, :])
        o = np.matmul(s, v[..., :kend, :], out=out[..., i0:i1, :])
        o *= 1.0 / total  # normalize the (bq, hs) output, not the (bq, kend) probabilities
        np.log(total, out=total)
        np.add(total, m, out=lse[..., i0:i1, :])

    def backward(g, dq, dk, dv):
        g = np.ascontiguousarray(g)
        if jit is not None:
            qsb, ka, va, qat, gat = _jit_backward_operands(jit, q, k, v, g, out, lse, scale)
        else:
            qsb = qs
            ka, va = _aug(k, 1.0), _aug(v, 1.0)  # (B, nh, Tk, hs + 1)
            qat = _aug_t(qs, -lse)  # [qs^T; -lse^T] (B, nh, hs + 1, Tq)
            gat = _aug_t(g, -_rowdot(g, out))  # [g^T; -rowsum(P * dP)^T]: rowsum(P dP) = g . out
        dq[...] = 0.0
        for j0 in range(0, tk, blk):
            j1 = min(tk, j0 + blk)
            r0 = 0 if mask is None else max(0, j0 - off)  # the first query that sees a key of the block
            if r0 >= tq:
                dk[..., j0:j1, :] = 0.0
                dv[..., j0:j1, :] = 0.0
                continue
            pt = ka[..., j0:j1, :] @ qat[..., r0:]  # S^T - lse (B, nh, bk, nq)
            if jit is not None:  # P^T: exp, and 0 where hidden, in one pass
                jit.att_bwd_exp(pt, -tq if mask is None else j0 - off - r0, q.dtype.type(0))
            else:
                r1 = min(tq, j1 - 1 - off)  # queries from r1 on see the whole block
                if mask is not None and r0 < r1:
                    _mask_out(pt[..., :r1 - r0], mask[r0:r1, j0:j1].T)
                np.exp(pt, out=pt)  # P^T
            np.matmul(pt, g[..., r0:, :], out=dv[..., j0:j1, :])
            dst = va[..., j0:j1, :] @ gat[..., r0:]  # dP^T - rowsum(P dP) (B, nh, bk, nq)
            dst *= pt  # dS^T
            np.matmul(dst, qsb[..., r0:, :], out=dk[..., j0:j1, :])
            dq[..., r0:, :] += np.swapaxes(dst, -1, -2) @ k[..., j0:j1, :]  # BLAS takes dS as transposed
        dq *= scale

    return backward


def _jit_backward_operands(jit, q, k, v, g, out, lse, scale):
    """numba's one pass: qs = q scale, ka = [k, 1], va = [v, 1] (G, Tk, hs + 1), qat = [qs^T; -lse]
    and gat = [g^T; -rowsum(P dP)] (G, hs + 1, Tq)."""
    (g_, tq, hs), tk = q.shape, k.shape[-2]
    qs = np.empty_like(q)
    ka, va = (np.empty((g_, tk, hs + 1), dtype=q.dtype) for _ in range(2))
    qat, gat = (np.empty((g_, hs + 1, tq), dtype=q.dtype) for _ in range(2))
    jit.att_bwd_prep(q, k, v, g, out, lse, q.dtype.type(scale), qs, ka, va, qat, gat, q.dtype.type(0))
    return qs, ka, va, qat, gat


def tune_malloc() -> bool:
    """Keep freed array memory in the heap instead of handing it back to the OS.

    A training step frees and reallocates the same ~100 MB of activations and
    gradients every step. glibc returns large blocks to the kernel (munmap,
    heap trimming), so each step re-faults every page: measured here that was
    ~9,000 page faults and 18 ms of system time in a 67 ms step (cpu-small, one
    thread). Serving blocks up to 32 MiB from the heap and trimming only above
    256 MiB of free space removes all of it.

    It changes the whole process's allocator, so no import and no backend does
    it: a program that trains calls it (`tinyllm train` and scripts/bench.py
    do). glibc only; returns whether the settings were applied.
    """
    if not sys.platform.startswith("linux"):
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


def load_fast():
    """The CPU fast path (NumPy only, so it is always available)."""
    return NumpyFast()

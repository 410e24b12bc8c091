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

Attention (blocked, flash-style, past one block of context; read straight out
of the fused qkv projection for self_attention) is in backends/cpu_attention.py.

Threads follow one policy (backends/threads.py), refreshed from the matmul
kernel: BLAS splits the matmuls over the threads the policy allows, and every
other kernel here cuts its rows into a few pieces per thread (attention: its
(batch, head) pairs into groups, at least one per thread), which the calling
thread and the policy's helper threads take in turn, BLAS at one thread
inside each piece.
"""
from __future__ import annotations

import math
import sys

import numpy as np

from .cpu_attention import attention4
from .jit_cpu import jit_loops
from .mkl_gemm import gemm_available, matmul2d
from .rows import rowsum, spans
from .threads import ThreadPolicy

_GELU_C = math.sqrt(2.0 / math.pi)
_GELU_A = 0.044715
CHUNK = 1 << 16  # elements per elementwise pass: a chunk's temporaries stay in L2


def _unbroadcast(g, shape):
    """Sum g down to `shape`, undoing broadcasting over leading or size-1 axes."""
    if g.shape == tuple(shape):
        return g
    extra = g.ndim - len(shape)
    if extra > 0:
        g = g.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g


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
        """GELU as numba's one pass each way (backends/jit_cpu.py), pieces across the threads;
        only x is kept: the backward computes the gate again."""
        shape, xf = x.shape, np.ascontiguousarray(x).reshape(-1)
        out = np.empty_like(xf)
        parts = self.threads.ranges(xf.size, xf.size)
        self.threads.run(lambda a, b: self.jit.gelu_forward(xf[a:b], out[a:b]), parts)

        def backward(g):
            gf = np.ascontiguousarray(g, dtype=xf.dtype).reshape(-1)
            r = np.empty_like(xf)
            k1, k3, one = (xf.dtype.type(c) for c in (2.0 * _GELU_C, 6.0 * _GELU_C * _GELU_A, 1.0))
            self.threads.run(lambda a, b: self.jit.gelu_backward(gf[a:b], xf[a:b], r[a:b], k1, k3, one), parts)
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
                for i, j in spans(a, b, step):
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
        s = rowsum(e)  # (N, 1)
        loss_rows = np.log(s[:, 0]) - picked

        def backward(scale_rows):
            dz = e * (scale_rows[:, None] / s)  # softmax * scale
            dz[rows, t] -= scale_rows
            return (dz,)

        return loss_rows, backward

    # -- scaled-dot-product attention (backends/cpu_attention.py) --------------
    def attention(self, xp, q, k, v, mask, scale):
        out = np.empty(q.shape[:-1] + v.shape[-1:], dtype=q.dtype)  # (..., Tq, hs)
        backward4 = attention4(self, *(_heads4(a) for a in (q, k, v)), mask, scale, _heads4(out))

        def backward(g):
            grads = tuple(np.empty(a.shape, dtype=q.dtype) for a in (q, k, v))
            backward4(_heads4(g), *(_heads4(d) for d in grads))
            return grads

        return out, backward

    def self_attention(self, xp, qkv, n_head, mask, scale):
        """Attention over the heads of one fused projection, read and written in place: q, k, v
        are views into qkv, the heads' outputs land side by side in (B, T, C), and the backward
        writes the three gradients straight into one (B, T, 3C) array."""
        b, t, c3 = qkv.shape
        parts = qkv.reshape(b, t, 3, n_head, c3 // (3 * n_head))  # (B, T, 3, nh, hs)
        q, k, v = (parts[:, :, i].transpose(0, 2, 1, 3) for i in range(3))  # (B, nh, T, hs) views
        y = np.empty((b, t, c3 // 3), dtype=qkv.dtype)
        backward4 = attention4(self, q, k, v, mask, scale, _split_heads(y, n_head))

        def backward(g):
            d = np.empty(parts.shape, dtype=qkv.dtype)
            backward4(_split_heads(g, n_head), *(d[:, :, i].transpose(0, 2, 1, 3) for i in range(3)))
            return (d.reshape(qkv.shape),)

        return y, backward

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

        self.threads.run(update, self.threads.ranges(p.size, 4 * p.size))


def _heads4(a):
    """(..., T, d) as a 4-D (B, H, T, d) array: a view when a is contiguous (leading axes merged)."""
    if a.ndim == 4:
        return a
    if a.ndim < 4:
        return a.reshape((1,) * (4 - a.ndim) + a.shape)
    return a.reshape((-1,) + a.shape[-3:])


def _split_heads(a, n_head):
    """(B, T, C) as the (B, nh, T, hs) view of its heads."""
    b, t, c = a.shape
    return a.reshape(b, t, n_head, c // n_head).transpose(0, 2, 1, 3)


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

"""The CPU's fused kernels (the signatures of backends/kernels.py), each with the values of the
op's standard-only reference in tinyllm/ops (tests/test_fast_paths.py holds them to it), float32
for training and float64 for the gradient checks, keeping only what its backward needs.

Matmuls go to BLAS (MKL's GEMM where mkl.py loads it), which splits them over the thread
policy's threads (threads.py); the other kernels cut their rows into pieces that the policy's
threads take in turn, each piece one pass of numba's loops (jit/) or, without numba, a few NumPy
passes over chunks that stay in cache (passes.py). Attention is attention.py's.
"""
from __future__ import annotations

import math

import numpy as np

from . import mkl, passes
from .attention import attention4
from .jit import jit_loops
from .jit.constants import GELU_A, GELU_C
from .reuse import Kept
from .threads import ThreadPolicy


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
        mkl.gemm_available()  # MKL, if usable, loads first: the thread policy then sizes its pool too
        if threads is None:
            threads = ThreadPolicy(blas=mkl.blas_controllers(), on_helper=mkl.one_thread_here)
        self.threads = threads
        self.jit = jit_loops()  # numba's one-pass loops, or None: NumPy's passes
        self.kept = Kept()  # large arrays written again each step instead of faulted in afresh (reuse.py)

    @property
    def name(self) -> str:
        name = "numpy + numba loops" if self.jit is not None else "numpy"
        return name + " + MKL matmuls" if mkl.gemm_available() else name

    # -- matmul: BLAS splits it across the policy's threads; 2-D products by MKL when installed (mkl.py)
    def matmul(self, xp, a, b):
        self.threads.refresh()  # sizes the BLAS pool to the cores free now
        if b.ndim == 2:  # (..., K) @ (K, N): one (rows, K) @ (K, N) matmul
            lead, (k, n) = a.shape[:-1], b.shape
            a2 = a.reshape(-1, k)

            def folded_backward(g, need=(True, True)):
                g2 = g.reshape(-1, n)
                ga = self._product(g2, b.T).reshape(lead + (k,)) if need[0] else None
                gb = _weight_grad(self, a2, g2, b) if need[1] else None  # (K, N): the weight's gradient
                return ga, gb

            return self._product(a2, b).reshape(lead + (n,)), folded_backward

        def backward(g, need=(True, True)):
            ga = _unbroadcast(g @ np.swapaxes(b, -1, -2), a.shape) if need[0] else None
            gb = _unbroadcast(np.swapaxes(a, -1, -2) @ g, b.shape) if need[1] else None
            return ga, gb

        return a @ b, backward

    def _product(self, a, b):
        """a @ b (2-D): a large product (the logits, the matmul op's weight gradient) into the array kept from the
        step before when nothing holds it any more (reuse.py), the rest into a fresh one."""
        if a.dtype != b.dtype or a.dtype.kind != "f":
            return mkl.matmul2d(a, b)
        return mkl.matmul2d(a, b, out=self.kept.empty((a.shape[0], b.shape[1]), a.dtype))

    # -- GELU (tanh form) -----------------------------------------------------
    def gelu(self, xp, x):
        if self.jit is None:
            return passes.gelu(self.threads, x)
        return self._gelu_loops(x)

    def _gelu_loops(self, x):
        """GELU as numba's one pass each way (jit/gelu.py), pieces across the threads; only x is
        kept: the backward computes the gate again."""
        shape, xf = x.shape, np.ascontiguousarray(x).reshape(-1)
        out = np.empty_like(xf)
        parts = self.threads.ranges(xf.size, xf.size)
        self.threads.run(lambda a, b: self.jit.gelu_forward(xf[a:b], out[a:b]), parts)

        def backward(g):
            gf = np.ascontiguousarray(g, dtype=xf.dtype).reshape(-1)
            r = np.empty_like(xf)
            k1, k3, one = (xf.dtype.type(c) for c in (2.0 * GELU_C, 6.0 * GELU_C * GELU_A, 1.0))
            self.threads.run(lambda a, b: self.jit.gelu_backward(gf[a:b], xf[a:b], r[a:b], k1, k3, one), parts)
            return (r.reshape(shape),)

        return out.reshape(shape), backward

    def layer_norm(self, xp, x, w, b, eps):
        if self.jit is None:
            return passes.layer_norm(self.threads, x, w, b, eps)
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

    # -- softmax + cross-entropy over rows -----------------------------------
    def cross_entropy(self, xp, z, t):
        """Log-softmax, loss and gradient fused: the forward keeps each row's log-sum-exp (N,), the
        backward makes dz in one pass over the logits; rows in pieces across the threads (numba's
        loops, jit/loss.py, or NumPy passes over chunks of rows, passes.py). dz is the array kept
        from the last step when nothing holds it any more (the head's matmul has consumed it)."""
        z = np.ascontiguousarray(z)
        t = np.ascontiguousarray(t, dtype=np.int64)
        n = z.shape[0]
        lse, loss_rows = np.empty(n, z.dtype), np.empty(n, z.dtype)
        parts = self.threads.ranges(n, z.size)
        if self.jit is None:
            forward, grad = passes.ce_forward, passes.ce_backward
        else:
            zero = z.dtype.type(0.0)
            forward, grad = (lambda *a: self.jit.ce_forward(*a, zero)), self.jit.ce_backward
        self.threads.run(lambda a, b: forward(z[a:b], t[a:b], lse[a:b], loss_rows[a:b]), parts)

        def backward(scale_rows):
            scale = np.ascontiguousarray(scale_rows, dtype=z.dtype)
            dz = self.kept.empty(z.shape, z.dtype)
            self.threads.run(lambda a, b: grad(z[a:b], t[a:b], lse[a:b], scale[a:b], dz[a:b]), parts)
            return (dz,)

        return loss_rows, backward

    # -- scaled-dot-product attention (attention.py) ----------------------------
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
        """Update p, m, v in place (p, m, v are owned by the optimizer), in pieces across the threads."""
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

        passes.adam(self.threads, p, g, m, v, lr, b1, b2, eps, wd, bc1, bc2, decoupled)


def _weight_grad(fast, a2, g2, b):
    """a2.T @ g2, laid out like b: for a transposed weight (x @ wte.T through the matmul op) the product is
    made as (g2.T @ a2).T, whose transpose, the tied weight's gradient, is then contiguous (copied into the
    optimizer's buffer in one pass, not a strided one)."""
    if b.flags.f_contiguous and not b.flags.c_contiguous:
        return fast._product(g2.T, a2).T
    return fast._product(a2.T, g2)


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


def load_fast():
    """The CPU fast path (NumPy only, so it is always available)."""
    return NumpyFast()

"""The CUDA backend's fused kernels (backends/kernels.py's signatures), launched from the CUDA C++
in backends/cuda/kernels/ through CuPy's RawModule (or the simulated CuPy's, which runs the same
source on the CPU). Costs per call, against the standard-only path, are in docs/gpu-kernels.md."""
from __future__ import annotations

import math

import numpy as np

from . import kernels
from .attention import self_attention
from .launch import BLOCK, FLAT, contig as _contig, grid as _grid, suffix as _suffix

LN_CHUNK = 64  # rows a block sums for layer norm's weight and bias gradients


class CudaFused:
    """gelu, layer_norm, cross_entropy, self_attention, adam_step and the Philox words / dropout.
    Every array is the current device's; the backend enters its device around each op."""

    def __init__(self, cupy):
        self._cp = cupy
        self._modules: dict = {}
        self._functions: dict = {}
        self._dummy = {}

    @property
    def name(self) -> str:
        return "CUDA C++ kernels"

    def fn(self, name: str):
        f = self._functions.get(name)
        if f is None:
            family = kernels.all_entries()[name]
            if family not in self._modules:
                self._modules[family] = self._cp.RawModule(code=kernels.source(family), options=("-std=c++17",))
            f = self._functions[name] = self._modules[family].get_function(name)
        return f

    def _nothing(self, like):
        """A one-element stand-in for an optional pointer a kernel will not read."""
        key = (like.dtype.str, like.device.id)
        if key not in self._dummy:
            self._dummy[key] = self._cp.asarray(np.zeros(1, dtype=like.dtype))
        return self._dummy[key]

    # -- element-wise ---------------------------------------------------------------------------
    def gelu(self, xp, x):
        xc = xp.reshape(x, (-1,))
        if not xc.flags.c_contiguous:
            xc = xp.asarray(xc, copy=True)
        y = xp.empty_like(xc)
        n, s = xc.size, _suffix(x.dtype)
        self.fn(f"gelu_forward_{s}")(_grid(n), (FLAT,), (xc, y, np.int64(n)))

        def backward(g):
            gc = xp.reshape(g, (-1,))
            dx = xp.empty_like(xc)
            self.fn(f"gelu_backward_{s}")(_grid(n), (FLAT,), (_contig(xp, gc), xc, dx, np.int64(n)))
            return (xp.reshape(dx, x.shape),)

        return xp.reshape(y, x.shape), backward

    # -- rows -----------------------------------------------------------------------------------
    def layer_norm(self, xp, x, w, b, eps):
        C = x.shape[-1]
        xr = _contig(xp, xp.reshape(x, (-1, C)))  # (N, C)
        N, s, T = xr.shape[0], _suffix(x.dtype), x.dtype.type
        y, mean, rstd = xp.empty_like(xr), xp.empty((N,), dtype=x.dtype), xp.empty((N,), dtype=x.dtype)
        wa = w if w is not None else self._nothing(xr)
        ba = b if b is not None else self._nothing(xr)
        if N:  # a block a row
            self.fn(f"layer_norm_forward_{s}")((N,), (BLOCK,), (xr, wa, ba, y, mean, rstd, np.int32(C), T(eps),
                                                              np.int32(w is not None), np.int32(b is not None)))

        def backward(g):
            gr = _contig(xp, xp.reshape(g, (-1, C)))
            dx = xp.empty_like(xr)
            if N:
                self.fn(f"layer_norm_backward_dx_{s}")((N,), (BLOCK,),
                                                        (gr, xr, wa, mean, rstd, dx, np.int32(C), np.int32(w is not None)))
            gw = gb = None
            if w is not None or b is not None:
                chunks = max(1, -(-N // LN_CHUNK))
                parts = xp.empty((chunks, 2 * C), dtype=x.dtype)
                self.fn(f"layer_norm_backward_params_{s}")((-(-C // BLOCK), chunks), (BLOCK,),
                                                            (gr, xr, mean, rstd, parts, np.int64(N), np.int32(C),
                                                             np.int32(LN_CHUNK)))
                sums = xp.sum(parts, axis=0)  # (2C,): one reduction for both
                gw = sums[:C] if w is not None else None
                gb = sums[C:] if b is not None else None
            return xp.reshape(dx, x.shape), gw, gb

        return xp.reshape(y, x.shape), backward

    def cross_entropy(self, xp, z, t):
        zc, tc = _contig(xp, z), _contig(xp, t)
        N, V = zc.shape
        s = _suffix(z.dtype)
        loss, lse = xp.empty((N,), dtype=z.dtype), xp.empty((N,), dtype=z.dtype)
        if N:
            self.fn(f"cross_entropy_forward_{s}")((N,), (BLOCK,), (zc, tc, loss, lse, np.int32(V)))

        def backward(scale_rows):
            dz = xp.empty_like(zc)
            if N:
                self.fn(f"cross_entropy_backward_{s}")(_grid(N * V), (FLAT,),
                                                       (zc, tc, lse, _contig(xp, scale_rows), dz, np.int64(N),
                                                        np.int32(V)))
            return (dz,)

        return loss, backward

    # -- attention ------------------------------------------------------------------------------
    def self_attention(self, xp, qkv, n_head, mask, scale):
        return self_attention(self, xp, qkv, n_head, mask, scale)

    # -- the optimizer --------------------------------------------------------------------------
    def adam_step(self, p, g, m, v, lr, b1, b2, eps, wd, t, decoupled, norm=None, max_norm=0.0):
        """One Adam/AdamW update over flat buffers; norm (a device scalar) and max_norm > 0 fold the
        gradient clip's factor into the same pass."""
        T = p.dtype.type
        bc1, bc2 = 1.0 - b1 ** t, 1.0 - b2 ** t
        n = p.size
        normv = norm if norm is not None else self._nothing(p)
        self.fn(f"adam_{_suffix(p.dtype)}")(_grid(n), (FLAT,), (
            p, g, m, v, np.int64(n), normv, T(max_norm if norm is not None else 0.0), T(b1), T(b2), T(lr / bc1),
            T(1.0 / math.sqrt(bc2)), T(eps), T(1.0 - lr * wd if decoupled else 1.0), T(0.0 if decoupled else wd)))

    # -- the embedding's backward ---------------------------------------------------------------
    def segment_add(self, xp, target, indices, values):
        """target[indices[i]] += values[i] (rows), in place and deterministically: a stable sort by index,
        then one kernel in which the first row of each run of equal indices sums the run in order."""
        n = indices.shape[0]
        if n == 0:
            return target
        C = 1
        for s in target.shape[1:]:
            C *= s
        order = xp.argsort(indices, stable=True)
        si = xp.take(indices, order)
        rows = _contig(xp, xp.reshape(values, (n, C)))
        self.fn(f"segment_add_{_suffix(target.dtype)}")(_grid(n * C), (FLAT,), (target, _contig(xp, si), order, rows,
                                                                               np.int64(n), np.int32(C)))
        return target

    # -- random words ---------------------------------------------------------------------------
    def philox_words(self, xp, n: int, seed: int, site: int, step: int):
        out = xp.empty((n,), dtype=xp.uint64)
        groups = -(-n // 4)
        if n:
            self.fn("philox_words")(_grid(groups), (FLAT,), (out, np.int64(n), np.int64(groups), *_philox_args(seed, site, step)))
        return out

    def dropout(self, xp, x, p: float, seed: int, site: int, step: int, rows=None):
        """x * mask / (1 - p) with tinyllm.random's mask of that draw, words made in the kernel."""
        n = x.size
        xc = _contig(xp, xp.reshape(x, (-1,)))
        if rows is None:
            offset, total = 0, n
        else:
            first, total_rows = rows
            inner = n // x.shape[0] if x.shape[0] else 0
            offset, total = first * inner, total_rows * inner
        T = x.dtype.type
        threshold = min(round(p * 2.0 ** 32), 0xFFFFFFFF)
        args = (np.int64(n), np.int64(offset), np.int64(-(-total // 4)), np.uint32(threshold), T(1.0 / (1.0 - p)),
                *_philox_args(seed, site, step))
        name = f"dropout_{_suffix(x.dtype)}"
        y = xp.empty_like(xc)
        if n:
            self.fn(name)(_grid(n), (FLAT,), (xc, y, *args))

        def backward(g):
            dx = xp.empty_like(xc)
            if n:
                self.fn(name)(_grid(n), (FLAT,), (_contig(xp, xp.reshape(g, (-1,))), dx, *args))
            return (xp.reshape(dx, x.shape),)

        return xp.reshape(y, x.shape), backward


def _philox_args(seed: int, site: int, step: int) -> tuple:
    """The counter's seed and step words and the key, as random.py lays them out."""
    m = 0xFFFFFFFF
    return (np.uint32((seed >> 32) & m), np.uint32(step & m), np.uint32((step >> 32) & m), np.uint32(seed & m),
            np.uint32(site & m))

"""Causal scaled-dot-product attention with its own backward."""
from __future__ import annotations

import math

from ..tensor import Tensor
from .activation import softmax_data
from .registry import op


def causal_mask(backend, tq: int, tk: int):
    """(tq, tk) bool, True where query i may see key j: j <= i + (tk - tq).

    The offset lets a few new queries (KV-cache sampling) see the whole past.
    """
    key = ("causal", tq, tk)
    m = backend._cache.get(key)
    if m is None:
        xp = backend.xp
        i = xp.arange(tq)[:, None] + (tk - tq)
        j = xp.arange(tk)[None, :]
        m = backend._cache[key] = j <= i
    return m


@op
def attention(q: Tensor, k: Tensor, v: Tensor, causal: bool = True, scale: float | None = None) -> Tensor:
    """softmax(q k^T * scale [+ causal mask]) v.

    q (B, nh, Tq, hs), k and v (B, nh, Tk, hs) -> (B, nh, Tq, hs).
    """
    xp = q.xp
    backend = q.backend
    tq, tk, hs = q.shape[-2], k.shape[-2], q.shape[-1]
    scale = 1.0 / math.sqrt(hs) if scale is None else float(scale)
    qd, kd, vd = q.data, k.data, v.data
    fast = backend.fast
    if fast is not None and hasattr(fast, "attention"):
        out, bwd = fast.attention(qd, kd, vd, causal, scale)
        return Tensor._make(out, backend, (q, k, v), bwd)
    s = (qd @ xp.matrix_transpose(kd)) * scale  # (B, nh, Tq, Tk)
    if causal:
        s = xp.where(causal_mask(backend, tq, tk), s, -math.inf)
    p = softmax_data(xp, s)  # (B, nh, Tq, Tk)
    out = p @ vd  # (B, nh, Tq, hs)

    def backward(g):
        dv = xp.matrix_transpose(p) @ g  # (B, nh, Tk, hs)
        dp = g @ xp.matrix_transpose(vd)  # (B, nh, Tq, Tk)
        ds = p * (dp - xp.sum(dp * p, axis=-1, keepdims=True)) * scale
        dq = ds @ kd
        dk = xp.matrix_transpose(ds) @ qd
        return dq, dk, dv

    return Tensor._make(out, backend, (q, k, v), backward)

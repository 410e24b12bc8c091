"""Causal scaled-dot-product attention with its own backward."""
from __future__ import annotations

import math

from ..tensor import Tensor
from ._util import as_float
from .activation import softmax_data
from .kernels import kernel, reference
from .registry import op


def causal_mask(backend, tq: int, tk: int):
    """(tq, tk) bool, True where query i may see key j: j <= i + (tk - tq).

    The offset lets a few new queries (KV-cache sampling) see the whole past.
    The one mask cache: fused kernels get their mask from here.
    """
    key = ("causal", tq, tk)
    m = backend.cache.get(key)
    if m is None:
        xp = backend.xp
        i = xp.arange(tq, device=backend.device)[:, None] + (tk - tq)
        j = xp.arange(tk, device=backend.device)[None, :]
        m = backend.cache[key] = j <= i
    return m


@reference("attention")
def attention_kernel(xp, q, k, v, mask, scale):
    s = (q @ xp.matrix_transpose(k)) * scale  # (B, nh, Tq, Tk)
    if mask is not None:
        s = xp.where(mask, s, -math.inf)
    p = softmax_data(xp, s)  # (B, nh, Tq, Tk)
    out = p @ v  # (B, nh, Tq, hs)

    def backward(g):
        dv = xp.matrix_transpose(p) @ g  # (B, nh, Tk, hs)
        dp = g @ xp.matrix_transpose(v)  # (B, nh, Tq, Tk)
        ds = p * (dp - xp.sum(dp * p, axis=-1, keepdims=True)) * scale
        dq = ds @ k
        dk = xp.matrix_transpose(ds) @ q
        return dq, dk, dv

    return out, backward


@op
def attention(q: Tensor, k: Tensor, v: Tensor, causal: bool = True, scale: float | None = None) -> Tensor:
    """softmax(q k^T * scale [+ causal mask]) v.

    q (B, nh, Tq, hs), k and v (B, nh, Tk, hs) -> (B, nh, Tq, hs).
    """
    q = as_float(q)  # integer inputs: float32
    k, v = as_float(k, q), as_float(v, q)
    backend = q.backend
    tq, tk, hs = q.shape[-2], k.shape[-2], q.shape[-1]
    scale = 1.0 / math.sqrt(hs) if scale is None else float(scale)
    mask = causal_mask(backend, tq, tk) if causal else None
    out, backward = kernel(backend, "attention")(q.xp, q.data, k.data, v.data, mask, scale)
    return Tensor.from_op(out, backend, (q, k, v), backward)

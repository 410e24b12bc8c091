"""Causal scaled-dot-product attention with its own backward: of q, k, v given apart, and of the
heads of one fused qkv projection (self_attention, what the GPT block runs)."""
from __future__ import annotations

import math

from ..errors import ShapeError
from ..autograd import Tensor
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


@reference("self_attention")
def self_attention_kernel(xp, qkv, n_head, mask, scale):
    b, t, c3 = qkv.shape
    c = c3 // 3
    parts = xp.reshape(qkv, (b, t, 3, n_head, c // n_head))  # (B, T, 3, nh, hs)
    q, k, v = (xp.permute_dims(parts[:, :, i, :, :], (0, 2, 1, 3)) for i in range(3))  # (B, nh, T, hs)
    out, attention_backward = attention_kernel(xp, q, k, v, mask, scale)
    y = xp.reshape(xp.permute_dims(out, (0, 2, 1, 3)), (b, t, c))  # heads side by side

    def backward(g):
        g4 = xp.permute_dims(xp.reshape(g, (b, t, n_head, c // n_head)), (0, 2, 1, 3))  # (B, nh, T, hs)
        grads = [xp.permute_dims(d, (0, 2, 1, 3)) for d in attention_backward(g4)]  # 3 x (B, T, nh, hs)
        return (xp.reshape(xp.stack(grads, axis=2), (b, t, c3)),)

    return y, backward


@op
def self_attention(qkv: Tensor, n_head: int, causal: bool = True, scale: float | None = None) -> Tensor:
    """Multi-head attention over one fused projection: qkv (B, T, 3C) holds q, k and v side by
    side along its last axis (each C = n_head * hs wide, head by head) -> (B, T, C), the heads'
    outputs side by side. The same as splitting q, k, v into heads, attention() and joining the
    heads again; a backend may run it without the copies that takes.
    """
    qkv = as_float(qkv)
    if qkv.ndim != 3 or qkv.shape[-1] % 3:
        raise ShapeError(f"self_attention: qkv {qkv.shape} must be (B, T, 3C): q, k and v side by side")
    c = qkv.shape[-1] // 3
    if n_head < 1 or c % n_head:
        raise ShapeError(f"self_attention: C = {c} (qkv {qkv.shape}) does not split into {n_head} heads")
    backend, t = qkv.backend, qkv.shape[1]
    scale = 1.0 / math.sqrt(c // n_head) if scale is None else float(scale)
    mask = causal_mask(backend, t, t) if causal else None
    out, backward = kernel(backend, "self_attention")(qkv.xp, qkv.data, n_head, mask, scale)
    return Tensor.from_op(out, backend, (qkv,), backward)

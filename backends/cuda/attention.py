"""Causal self-attention on the GPU: cuBLAS's batched products on operands laid out C-contiguous by
one relayout kernel (CuPy's batched matmul copies any operand that is not), the scores' scale, mask
and softmax one pass a row. Where a product wants a transposed big (T, T) operand, the product is
taken the other way round, so that only the small (T, hs) side is transposed: p^T g = (g^T p)^T."""
from __future__ import annotations

import numpy as np

from .launch import BLOCK, FLAT, contig as _contig, grid as _grid, suffix as _suffix


def self_attention(fused, xp, qkv, n_head, mask, scale):
    """qkv (B, T, 3C) -> (B, T, C); backward(g) -> (dqkv,). mask None or causal (T, T)."""
    qkv = _contig(xp, qkv)
    B, T, C3 = qkv.shape
    H, C = n_head, C3 // 3
    hs = C // H
    s_ = _suffix(qkv.dtype)
    n = B * T * C
    heads = (B, H, T, hs)
    dims = (np.int32(B), np.int32(T), np.int32(H), np.int32(hs))
    causal = np.int32(mask is not None)
    scale_t = qkv.dtype.type(scale)
    if n == 0:  # nothing to attend over: the shapes alone
        z = xp.zeros((B, T, C), dtype=qkv.dtype)
        return z, (lambda g: (xp.zeros_like(qkv),))

    def relayout(kernel, big, heads_, parts, transposed, row):
        """heads_split (big -> up to 3 head tensors) or heads_merge (the other way), unused slots filled."""
        pad = 3 - len(heads_)
        heads_ = list(heads_) + [fused._nothing(big)] * pad
        parts = [np.int32(p) for p in parts] + [np.int32(-1)] * pad
        tr = [np.int32(t) for t in transposed] + [np.int32(0)] * pad
        fused.fn(f"{kernel}_{s_}")(_grid(n), (FLAT,), (big, *heads_, *parts, *tr, *dims, np.int64(row)))

    def split(src, outs, parts, transposed, row):
        relayout("heads_split", src, outs, parts, transposed, row)

    def merge(dst, srcs, parts, transposed, row):
        relayout("heads_merge", dst, srcs, parts, transposed, row)

    q, kT, v = (xp.empty(heads, dtype=qkv.dtype), xp.empty((B, H, hs, T), dtype=qkv.dtype),
                xp.empty(heads, dtype=qkv.dtype))
    split(qkv, (q, kT, v), (0, 1, 2), (0, 1, 0), C3)
    s = xp.matmul(q, kT)  # (B, H, T, T)
    p = xp.empty_like(s)
    fused.fn(f"attention_softmax_{s_}")((B * H * T,), (BLOCK,), (s, p, np.int32(T), np.int32(T), scale_t, causal))
    del s, q, kT
    out = xp.empty((B, T, C), dtype=qkv.dtype)
    merge(out, (xp.matmul(p, v),), (0,), (0,), C)

    def backward(g):
        g = _contig(xp, g)
        gh, gT = xp.empty(heads, dtype=g.dtype), xp.empty((B, H, hs, T), dtype=g.dtype)
        split(g, (gh, gT), (0, 0), (0, 1), C)
        qT, k, vT = (xp.empty((B, H, hs, T), dtype=g.dtype), xp.empty(heads, dtype=g.dtype),
                     xp.empty((B, H, hs, T), dtype=g.dtype))
        split(qkv, (qT, k, vT), (0, 1, 2), (1, 0, 1), C3)
        dp = xp.matmul(gh, vT)  # (B, H, T, T)
        dvT = xp.matmul(gT, p)  # (B, H, hs, T) = (p^T g)^T
        ds = xp.empty_like(p)
        fused.fn(f"attention_softmax_backward_{s_}")((B * H * T,), (BLOCK,), (p, dp, ds, np.int32(T), scale_t))
        dq = xp.matmul(ds, k)  # (B, H, T, hs)
        dkT = xp.matmul(qT, ds)  # (B, H, hs, T) = (ds^T q)^T
        dqkv = xp.empty((B, T, C3), dtype=g.dtype)
        merge(dqkv, (dq, dkT, dvT), (0, 1, 2), (0, 1, 1), C3)
        return (dqkv,)

    return out, backward

"""Matrix multiply, 2-D and batched with broadcasting over leading axes."""
from __future__ import annotations

from ..tensor import Tensor
from ._util import lift, unbroadcast
from .registry import op


@op
def matmul(a: Tensor, b: Tensor) -> Tensor:
    like = a if isinstance(a, Tensor) else b
    a, b = lift(a, like), lift(b, like)
    if a.ndim < 2 or b.ndim < 2:
        raise ValueError(f"matmul needs 2-D or batched operands, got shapes {a.shape} and {b.shape}")
    xp = like.xp
    ad, bd = a.data, b.data

    def backward(g):
        ga = gb = None
        if a.requires_grad:
            ga = unbroadcast(xp, g @ xp.matrix_transpose(bd), ad.shape)
        if b.requires_grad:
            if ad.ndim > 2 and bd.ndim == 2:
                # (B, T, K) @ (K, N): fold the batch into rows, one big matmul
                k = ad.shape[-1]
                gb = xp.reshape(ad, (-1, k)).T @ xp.reshape(g, (-1, g.shape[-1]))
            else:
                gb = unbroadcast(xp, xp.matrix_transpose(ad) @ g, bd.shape)
        return ga, gb

    return Tensor._make(ad @ bd, like.backend, (a, b), backward)

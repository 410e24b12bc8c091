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
    if ad.ndim > 2 and bd.ndim == 2:
        # (B, T, K) @ (K, N): fold the batch into rows; one big matmul is several
        # times faster than the per-matrix loop a stacked matmul runs
        return _folded_matmul(a, b, like.backend)

    def backward(g):
        ga = gb = None
        if a.requires_grad:
            ga = unbroadcast(xp, g @ xp.matrix_transpose(bd), ad.shape)
        if b.requires_grad:
            gb = unbroadcast(xp, xp.matrix_transpose(ad) @ g, bd.shape)
        return ga, gb

    return Tensor._make(ad @ bd, like.backend, (a, b), backward)


def _folded_matmul(a: Tensor, b: Tensor, backend) -> Tensor:
    """(..., K) @ (K, N) as one (rows, K) @ (K, N) matmul, forward and backward."""
    xp = backend.xp
    ad, bd = a.data, b.data
    lead = tuple(ad.shape[:-1])
    k, n = bd.shape
    a2 = xp.reshape(ad, (-1, k))  # (rows, K)

    def backward(g):
        g2 = xp.reshape(g, (-1, n))  # (rows, N)
        ga = xp.reshape(g2 @ xp.matrix_transpose(bd), lead + (k,)) if a.requires_grad else None
        gb = xp.matrix_transpose(a2) @ g2 if b.requires_grad else None
        return ga, gb

    return Tensor._make(xp.reshape(a2 @ bd, lead + (n,)), backend, (a, b), backward)

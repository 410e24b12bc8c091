"""layer_norm and rms_norm over the last axis, each with a fused backward."""
from __future__ import annotations

from ..tensor import Tensor
from .registry import op


def _sum_lead(xp, g, n):
    """Sum over all but the last axis -> shape (n,)."""
    return xp.sum(xp.reshape(g, (-1, n)), axis=0)


@op
def layer_norm(x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    xp = x.xp
    d = x.data
    n = d.shape[-1]
    fast = x.backend.fast
    if fast is not None and hasattr(fast, "layer_norm"):
        out, bwd = fast.layer_norm(d, None if weight is None else weight.data, None if bias is None else bias.data, eps)
    else:
        mu = xp.mean(d, axis=-1, keepdims=True)
        xc = d - mu
        rstd = 1.0 / xp.sqrt(xp.mean(xc * xc, axis=-1, keepdims=True) + eps)
        xhat = xc * rstd  # (..., C)
        out = xhat
        if weight is not None:
            out = out * weight.data
        if bias is not None:
            out = out + bias.data

        def bwd(g):
            gw = _sum_lead(xp, g * xhat, n) if weight is not None else None
            gb = _sum_lead(xp, g, n) if bias is not None else None
            dxhat = g * weight.data if weight is not None else g
            dx = rstd * (dxhat - xp.mean(dxhat, axis=-1, keepdims=True)
                         - xhat * xp.mean(dxhat * xhat, axis=-1, keepdims=True))
            return dx, gw, gb

    parents = (x,) + tuple(t for t in (weight, bias) if t is not None)

    def backward(g):
        dx, gw, gb = bwd(g)
        return (dx,) + tuple(v for v, t in ((gw, weight), (gb, bias)) if t is not None)

    return Tensor._make(out, x.backend, parents, backward)


@op
def rms_norm(x: Tensor, weight: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    xp = x.xp
    d = x.data
    n = d.shape[-1]
    rrms = 1.0 / xp.sqrt(xp.mean(d * d, axis=-1, keepdims=True) + eps)
    xhat = d * rrms  # (..., C)
    out = xhat * weight.data if weight is not None else xhat

    def backward(g):
        dxhat = g * weight.data if weight is not None else g
        dx = rrms * (dxhat - xhat * xp.mean(dxhat * xhat, axis=-1, keepdims=True))
        if weight is None:
            return (dx,)
        return dx, _sum_lead(xp, g * xhat, n)

    parents = (x,) if weight is None else (x, weight)
    return Tensor._make(out, x.backend, parents, backward)

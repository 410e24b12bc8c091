"""softmax and log_softmax over one axis, numerically stable."""
from __future__ import annotations

from ..tensor import Tensor
from .registry import op


def softmax_data(xp, d, axis=-1):
    e = xp.exp(d - xp.max(d, axis=axis, keepdims=True))
    return e / xp.sum(e, axis=axis, keepdims=True)


@op
def softmax(x: Tensor, axis: int = -1) -> Tensor:
    xp = x.xp
    y = softmax_data(xp, x.data, axis)

    def backward(g):
        return (y * (g - xp.sum(g * y, axis=axis, keepdims=True)),)

    return Tensor._make(y, x.backend, (x,), backward)


@op
def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    xp = x.xp
    d = x.data
    z = d - xp.max(d, axis=axis, keepdims=True)
    out = z - xp.log(xp.sum(xp.exp(z), axis=axis, keepdims=True))

    def backward(g):
        return (g - xp.exp(out) * xp.sum(g, axis=axis, keepdims=True),)

    return Tensor._make(out, x.backend, (x,), backward)

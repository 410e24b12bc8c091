"""softmax and log_softmax over one axis, numerically stable."""
from __future__ import annotations

from ..autograd import Tensor
from ._util import floating
from .kernels import kernel, reference
from .registry import op


def softmax_data(xp, d, axis=-1):
    e = xp.exp(d - xp.max(d, axis=axis, keepdims=True))
    return e / xp.sum(e, axis=axis, keepdims=True)


@reference("softmax")
def softmax_kernel(xp, x, axis):
    y = softmax_data(xp, x, axis)

    def backward(g):
        return (y * (g - xp.sum(g * y, axis=axis, keepdims=True)),)

    return y, backward


@reference("log_softmax")
def log_softmax_kernel(xp, x, axis):
    z = x - xp.max(x, axis=axis, keepdims=True)
    out = z - xp.log(xp.sum(xp.exp(z), axis=axis, keepdims=True))

    def backward(g):
        return (g - xp.exp(out) * xp.sum(g, axis=axis, keepdims=True),)

    return out, backward


@op
@floating
def softmax(x: Tensor, axis: int = -1) -> Tensor:
    out, backward = kernel(x.backend, "softmax")(x.xp, x.data, axis)
    return Tensor.from_op(out, x.backend, (x,), backward)


@op
@floating
def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    out, backward = kernel(x.backend, "log_softmax")(x.xp, x.data, axis)
    return Tensor.from_op(out, x.backend, (x,), backward)

"""Reductions over axes: sum, mean, max (with keepdims)."""
from __future__ import annotations

from ..autograd import Tensor
from ._util import expand_reduced, floating, norm_axis
from .registry import op


@op
def sum(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    xp = x.xp
    shape = x.shape
    axes = norm_axis(axis, x.ndim)

    def backward(g):
        return (xp.broadcast_to(expand_reduced(xp, g, shape, axes, keepdims), shape),)

    return Tensor.from_op(xp.sum(x.data, axis=axes, keepdims=keepdims), x.backend, (x,), backward)


@op
@floating
def mean(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    xp = x.xp
    shape = x.shape
    axes = norm_axis(axis, x.ndim)
    n = 1
    for a in axes:
        n *= shape[a]

    def backward(g):
        return (xp.broadcast_to(expand_reduced(xp, g, shape, axes, keepdims) / n, shape),)

    return Tensor.from_op(xp.mean(x.data, axis=axes, keepdims=keepdims), x.backend, (x,), backward)


@op
def max(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    """Max over axes; the gradient is shared equally among tied maxima."""
    xp = x.xp
    d = x.data
    axes = norm_axis(axis, x.ndim)
    m = xp.max(d, axis=axes, keepdims=True)

    def backward(g):
        hit = xp.astype(d == m, d.dtype)
        count = xp.sum(hit, axis=axes, keepdims=True)
        return (hit / count * expand_reduced(xp, g, d.shape, axes, keepdims),)

    out = m if keepdims else xp.reshape(m, tuple(s for i, s in enumerate(d.shape) if i not in axes))
    return Tensor.from_op(out, x.backend, (x,), backward)

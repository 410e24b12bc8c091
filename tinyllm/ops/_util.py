"""Helpers shared by the ops: lifting operands, undoing broadcasts."""
from __future__ import annotations

from ..tensor import Tensor


def lift(x, like: Tensor) -> Tensor:
    """A Tensor on like's backend from a Tensor or array (scalars stay scalars)."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (int, float)):
        return x
    b = like.backend
    data = x if b.is_array(x) else b.from_host(x, b.dtype_name(like.dtype))
    return Tensor._make(data, b)


def raw(x, backend, dtype: str):
    """The device array behind a Tensor, a device array, or a host object (converted as dtype)."""
    if isinstance(x, Tensor):
        return x.data
    return x if backend.is_array(x) else backend.from_host(x, dtype)


def unbroadcast(xp, g, shape):
    """Sum g down to `shape`, undoing NumPy-style broadcasting."""
    if tuple(g.shape) == tuple(shape):
        return g
    extra = g.ndim - len(shape)
    if extra > 0:
        g = xp.sum(g, axis=tuple(range(extra)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    if axes:
        g = xp.sum(g, axis=axes, keepdims=True)
    return g


def norm_axis(axis, ndim):
    """axis (None, int or tuple) -> a tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        axis = (axis,)
    return tuple(sorted(a % ndim for a in axis))


def expand_reduced(xp, g, shape, axes, keepdims):
    """Give a reduced gradient back its reduced axes (as size 1) for broadcasting."""
    if not keepdims:
        g = xp.reshape(g, tuple(1 if i in axes else s for i, s in enumerate(shape)))
    return g

"""Helpers shared by the ops: lifting operands, undoing broadcasts."""
from __future__ import annotations

from backends import DeviceError, backend_of

from ..tensor import Tensor


def lift(x, like: Tensor) -> Tensor:
    """A Tensor on like's backend from a Tensor or array (scalars stay scalars)."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (int, float)):
        return x
    return Tensor._make(raw(x, like.backend, like.backend.dtype_name(like.dtype)), like.backend)


def raw(x, backend, dtype: str):
    """The device array behind a Tensor, a device array, or a host object (converted as dtype).
    An array on another device is refused: moving it is explicit (Tensor.to)."""
    if isinstance(x, Tensor):
        return x.data
    if backend.is_array(x):
        return x
    owner = backend_of(x)
    if owner is not None and owner.kind != "cpu":  # NumPy arrays are host data
        raise DeviceError(f"an array on {owner.name} was given to an op on {backend.name}; "
                          f"move it first, e.g. tinyllm.tensor(array, device={backend.name!r})")
    return backend.from_host(x, dtype)


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

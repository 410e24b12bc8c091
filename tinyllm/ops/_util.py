"""Helpers shared by the ops: lifting operands, integer promotion, undoing broadcasts, shape errors."""
from __future__ import annotations

import functools

from backends import DeviceError, backend_of

from ..errors import ShapeError
from ..autograd import Tensor


def is_float(t: Tensor) -> bool:
    xp = t.backend.xp
    return t.dtype == xp.float32 or t.dtype == xp.float64


def as_float(t: Tensor, like: Tensor | None = None) -> Tensor:
    """t, or an integer/bool t promoted to like's float dtype (float32, the default, without like).
    Integer tensors never require gradients, so the copy is a constant."""
    if is_float(t):
        return t
    xp = t.backend.xp
    return Tensor.from_op(xp.astype(t.data, xp.float32 if like is None else like.dtype), t.backend)


def floating(fn):
    """For an op whose result is a float: an integer tensor as first argument becomes float32 first,
    the same on every backend (NumPy would give float64, array-api-strict would refuse)."""
    @functools.wraps(fn)
    def with_float_input(x, *args, **kwargs):
        if isinstance(x, Tensor) and not is_float(x):
            x = as_float(x)
        return fn(x, *args, **kwargs)

    return with_float_input


def lift(x, like: Tensor) -> Tensor:
    """A Tensor on like's backend from a Tensor or array (scalars stay scalars). Host data takes like's
    dtype when like is a float tensor, else its own (so [1.5] next to an integer tensor stays 1.5)."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (int, float)):
        return x
    b = like.backend
    _refuse_foreign(x, b)
    if b.is_array(x) or not is_float(like):
        return Tensor(x, device=b)
    return Tensor.from_op(b.from_host(x, b.dtype_name(like.dtype)), b)


def _refuse_foreign(x, backend) -> None:
    """An array on another device is refused: moving it is explicit (Tensor.to)."""
    if backend.is_array(x):
        return
    owner = backend_of(x)
    if owner is not None and owner.kind != "cpu":  # NumPy arrays are host data
        raise DeviceError(f"an array on {owner.name} was given to an op on {backend.name}; "
                          f"move it first, e.g. tinyllm.tensor(array, device={backend.name!r})")


def device_array(x, backend, dtype: str):
    """The device array behind a Tensor, a device array, or a host object (converted as dtype).
    An array on another device is refused: moving it is explicit (Tensor.to)."""
    if isinstance(x, Tensor):
        if x.backend != backend:
            raise DeviceError(f"a tensor on {x.backend.name} was given to an op on {backend.name}; "
                              f"move it first, e.g. t.to({backend.name!r})")
        return x.data
    if backend.is_array(x):
        return x
    _refuse_foreign(x, backend)
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


def shape_of(x) -> tuple:
    """The shape of a Tensor or array; () for a Python number."""
    return tuple(getattr(x, "shape", ()))


def broadcasts(*shapes) -> bool:
    """Whether the shapes broadcast together (the standard's rule). An op that failed asks, to tell a shape
    mistake (ShapeError) from any other failure: NumPy raises ValueError for it, torch RuntimeError."""
    for i in range(1, max(map(len, shapes), default=0) + 1):
        if len({s[-i] for s in shapes if len(s) >= i} - {1}) > 1:
            return False
    return True


def broadcast_error(name: str, *operands) -> ShapeError:
    """`add: shapes (2, 3) and (4,) do not broadcast`."""
    shapes = " and ".join(str(shape_of(x)) for x in operands)
    return ShapeError(f"{name}: shapes {shapes} do not broadcast")

"""Ops that move data without arithmetic: reshape, permute, slicing, concat, where."""
from __future__ import annotations

from ..errors import ShapeError
from ..autograd import Tensor
from ._util import as_float, broadcast_error, broadcasts, device_array, is_float, shape_of, unbroadcast
from .elementwise import operands
from .registry import op


def _fits(size: int, shape: tuple) -> bool:
    """Whether `size` elements fill `shape` (in which one -1 stands for what is left)."""
    rest = [s for s in shape if s != -1]
    known = 1
    for s in rest:
        known *= s
    if len(shape) - len(rest) > 1 or any(s < 0 for s in rest):
        return False
    return known == size if len(rest) == len(shape) else known > 0 and size % known == 0


@op
def reshape(x: Tensor, shape) -> Tensor:
    xp = x.xp
    src = x.shape
    try:
        out = xp.reshape(x.data, tuple(shape))
    except Exception:
        if _fits(x.size, tuple(shape)):
            raise
        raise ShapeError(f"reshape: {src} -> {tuple(shape)}: {x.size} elements do not fit") from None
    return Tensor.from_op(out, x.backend, (x,), lambda g: (xp.reshape(g, src),))


@op
def permute(x: Tensor, axes) -> Tensor:
    xp = x.xp
    axes = tuple(a % x.ndim for a in axes)
    inv = [0] * len(axes)
    for i, a in enumerate(axes):
        inv[a] = i
    inv = tuple(inv)
    return Tensor.from_op(xp.permute_dims(x.data, axes), x.backend, (x,), lambda g: (xp.permute_dims(g, inv),))


@op
def transpose(x: Tensor, a: int = -2, b: int = -1) -> Tensor:
    """Swap two axes."""
    axes = list(range(x.ndim))
    a, b = a % x.ndim, b % x.ndim
    axes[a], axes[b] = axes[b], axes[a]
    return permute(x, axes)


def _check_basic(idx):
    items = idx if isinstance(idx, tuple) else (idx,)
    for i in items:
        if not (i is Ellipsis or isinstance(i, (int, slice))):
            raise TypeError("tensor[...] takes ints, slices and ...; use embedding() or take() to gather by an index array")


@op
def getitem(x: Tensor, idx) -> Tensor:
    """Basic indexing (ints, slices); the gradient is scattered back into zeros."""
    _check_basic(idx)
    xp = x.xp
    d = x.data

    def backward(g):
        full = xp.zeros(d.shape, dtype=g.dtype, device=x.backend.device)
        full[idx] = g
        return (full,)

    return Tensor.from_op(d[idx], x.backend, (x,), backward)


@op
def concat(tensors, axis: int = 0) -> Tensor:
    tensors = list(tensors)
    xp = tensors[0].xp
    axis = axis % tensors[0].ndim
    sizes = [t.shape[axis] for t in tensors]

    def backward(g):
        out, start = [], 0
        for n in sizes:
            sl = [slice(None)] * g.ndim
            sl[axis] = slice(start, start + n)
            out.append(g[tuple(sl)])
            start += n
        return tuple(out)

    try:
        out = xp.concat([t.data for t in tensors], axis=axis)
    except Exception:
        if len({(t.ndim, t.shape[:axis] + t.shape[axis + 1:]) for t in tensors}) == 1:
            raise
        shapes = ", ".join(str(t.shape) for t in tensors)
        raise ShapeError(f"concat: shapes {shapes} differ off axis {axis}") from None
    return Tensor.from_op(out, tensors[0].backend, tuple(tensors), backward)


@op
def where(cond, a, b) -> Tensor:
    """cond ? a : b, elementwise with broadcasting; cond gets no gradient."""
    a, b, like = operands(a, b)
    xp = like.xp
    c = device_array(cond, like.backend, "bool")
    ad = a.data if isinstance(a, Tensor) else a
    bd = b.data if isinstance(b, Tensor) else b
    try:
        out = xp.where(c, ad, bd)
    except Exception:
        if broadcasts(shape_of(c), shape_of(a), shape_of(b)):
            raise
        raise broadcast_error("where", c, a, b) from None
    parents = tuple(t for t in (a, b) if isinstance(t, Tensor))

    def backward(g):
        grads = []
        if isinstance(a, Tensor):
            grads.append(unbroadcast(xp, xp.where(c, g, 0.0), a.shape))
        if isinstance(b, Tensor):
            grads.append(unbroadcast(xp, xp.where(c, 0.0, g), b.shape))
        return tuple(grads)

    return Tensor.from_op(out, like.backend, parents, backward)


@op
def masked_fill(x: Tensor, mask, value: float) -> Tensor:
    """x with `value` where mask is true (mask broadcasts against x)."""
    if isinstance(value, float):
        x = as_float(x)  # an integer x filled with a float becomes float32
    fill = float(value) if is_float(x) else value
    xp = x.xp
    m = device_array(mask, x.backend, "bool")
    try:
        out = xp.where(m, fill, x.data)
    except Exception:
        if broadcasts(shape_of(m), x.shape):
            raise
        raise broadcast_error("masked_fill", m, x) from None
    return Tensor.from_op(out, x.backend, (x,), lambda g: (xp.where(m, 0.0, g),))

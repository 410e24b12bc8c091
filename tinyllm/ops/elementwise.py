"""Elementwise ops: forward and backward side by side."""
from __future__ import annotations

import math
import operator

from ..autograd import Tensor
from ._util import as_float, broadcast_error, broadcasts, floating, is_float, lift, shape_of, unbroadcast
from .kernels import kernel, reference
from .registry import op


def operands(a, b, floats: bool = False):
    """Lift both operands, once: at least one is a Tensor; a Python number stays a number. When the
    result is a float (a float operand, or floats=True for division), integer tensors become float.
    -> (a, b, the Tensor whose backend and dtype the result takes)."""
    like = a if isinstance(a, Tensor) else b
    a, b = lift(a, like), lift(b, like)
    ta, tb = isinstance(a, Tensor), isinstance(b, Tensor)
    fa = is_float(a) if ta else isinstance(a, float)
    fb = is_float(b) if tb else isinstance(b, float)
    if (fa and fb) or not (floats or fa or fb):  # the common cases: nothing to promote
        return a, b, like
    ref = a if ta and fa else b if tb and fb else None
    a = as_float(a, ref) if ta and not fa else a
    b = as_float(b, ref) if tb and not fb else b
    return a, b, a if ta else b


def _binary(name: str, fn, a, b, grad_a, grad_b, floats: bool = False) -> Tensor:
    """out = fn(x, y) over the operands' values (an array, or a Python number); grad_a(g, x, y, out)
    and grad_b(...) give each Tensor operand's gradient before broadcasting is undone."""
    a, b, like = operands(a, b, floats)
    x = a.data if isinstance(a, Tensor) else a
    y = b.data if isinstance(b, Tensor) else b
    try:
        out = fn(x, y)
    except Exception:
        if broadcasts(shape_of(a), shape_of(b)):
            raise
        raise broadcast_error(name, a, b) from None
    xp = like.xp
    pairs = tuple((t, d) for t, d in ((a, grad_a), (b, grad_b)) if isinstance(t, Tensor))

    def backward(g):
        return tuple(unbroadcast(xp, d(g, x, y, out), t.shape) if t.requires_grad else None for t, d in pairs)

    return Tensor.from_op(out, like.backend, tuple(t for t, _ in pairs), backward)


@op
def add(a, b) -> Tensor:
    return _binary("add", operator.add, a, b, lambda g, x, y, out: g, lambda g, x, y, out: g)


@op
def sub(a, b) -> Tensor:
    return _binary("sub", operator.sub, a, b, lambda g, x, y, out: g, lambda g, x, y, out: -g)


@op
def mul(a, b) -> Tensor:
    return _binary("mul", operator.mul, a, b, lambda g, x, y, out: g * y, lambda g, x, y, out: g * x)


@op
def div(a, b) -> Tensor:
    return _binary("div", operator.truediv, a, b, lambda g, x, y, out: g / y, lambda g, x, y, out: -g * out / y,
                   floats=True)


@op
def neg(x: Tensor) -> Tensor:
    return Tensor.from_op(-x.data, x.backend, (x,), lambda g: (-g,))


@op
@floating
def pow(x: Tensor, p: float) -> Tensor:
    """x ** p for a Python-number exponent p."""
    if isinstance(p, Tensor):
        raise TypeError("pow takes a Python number as exponent; use exp(log(x) * y) for a tensor exponent")
    d = x.data
    p = float(p)
    return Tensor.from_op(d ** p, x.backend, (x,), lambda g: (g * (p * d ** (p - 1.0)),))


@op
@floating
def exp(x: Tensor) -> Tensor:
    out = x.xp.exp(x.data)
    return Tensor.from_op(out, x.backend, (x,), lambda g: (g * out,))


@op
@floating
def log(x: Tensor) -> Tensor:
    d = x.data
    return Tensor.from_op(x.xp.log(d), x.backend, (x,), lambda g: (g / d,))


@op
@floating
def sqrt(x: Tensor) -> Tensor:
    out = x.xp.sqrt(x.data)
    return Tensor.from_op(out, x.backend, (x,), lambda g: (g * 0.5 / out,))


@op
@floating
def tanh(x: Tensor) -> Tensor:
    out = x.xp.tanh(x.data)
    return Tensor.from_op(out, x.backend, (x,), lambda g: (g * (1.0 - out * out),))


@op
@floating
def sigmoid(x: Tensor) -> Tensor:
    xp = x.xp
    # 1 / (1 + exp(-x)) overflows exp for very negative x; the tanh form does not
    out = 0.5 * (xp.tanh(0.5 * x.data) + 1.0)
    return Tensor.from_op(out, x.backend, (x,), lambda g: (g * out * (1.0 - out),))


@op
@floating
def relu(x: Tensor) -> Tensor:
    xp = x.xp
    d = x.data
    pos = d > 0
    return Tensor.from_op(xp.where(pos, d, 0.0), x.backend, (x,), lambda g: (xp.where(pos, g, 0.0),))


_GELU_C = math.sqrt(2.0 / math.pi)
_GELU_A = 0.044715


@reference("gelu")
def gelu_kernel(xp, x):
    """GELU, tanh approximation (no erf in the standard)."""
    t = xp.tanh(_GELU_C * (x + _GELU_A * x * x * x))
    out = 0.5 * x * (1.0 + t)

    def backward(g):
        dt = _GELU_C * (1.0 + 3 * _GELU_A * x * x)
        return (g * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * dt),)

    return out, backward


@op
@floating
def gelu(x: Tensor) -> Tensor:
    out, backward = kernel(x.backend, "gelu")(x.xp, x.data)
    return Tensor.from_op(out, x.backend, (x,), backward)


@op
def cast(x: Tensor, dtype) -> Tensor:
    """Change the float dtype (gradients flow back in the input's dtype)."""
    xp = x.xp
    src = x.dtype
    out = xp.astype(x.data, x.backend.dtype(dtype))
    return Tensor.from_op(out, x.backend, (x,), lambda g: (xp.astype(g, src),))

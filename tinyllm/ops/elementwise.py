"""Elementwise ops: forward and backward side by side."""
from __future__ import annotations

import math

from ..tensor import Tensor
from ._util import as_float, floating, is_float, lift, unbroadcast
from .kernels import kernel, reference
from .registry import op


def _binary(a, b, floats: bool = False):
    """Lift operands: at least one is a Tensor; a Python number stays a number. When the result is a
    float (a float operand, or floats=True for division), integer tensors are promoted to float."""
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


@op
def add(a, b) -> Tensor:
    a, b, t = _binary(a, b)
    xp = t.xp
    if not isinstance(b, Tensor):
        return Tensor.from_op(a.data + b, t.backend, (a,), lambda g: (g,))
    if not isinstance(a, Tensor):
        return Tensor.from_op(a + b.data, t.backend, (b,), lambda g: (g,))
    sa, sb = a.shape, b.shape
    return Tensor.from_op(a.data + b.data, t.backend, (a, b),
                        lambda g: (unbroadcast(xp, g, sa), unbroadcast(xp, g, sb)))


@op
def sub(a, b) -> Tensor:
    a, b, t = _binary(a, b)
    xp = t.xp
    if not isinstance(b, Tensor):
        return Tensor.from_op(a.data - b, t.backend, (a,), lambda g: (g,))
    if not isinstance(a, Tensor):
        return Tensor.from_op(a - b.data, t.backend, (b,), lambda g: (-g,))
    sa, sb = a.shape, b.shape
    return Tensor.from_op(a.data - b.data, t.backend, (a, b),
                        lambda g: (unbroadcast(xp, g, sa), unbroadcast(xp, -g, sb)))


@op
def mul(a, b) -> Tensor:
    a, b, t = _binary(a, b)
    xp = t.xp
    if not isinstance(b, Tensor):
        return Tensor.from_op(a.data * b, t.backend, (a,), lambda g: (g * b,))
    if not isinstance(a, Tensor):
        return Tensor.from_op(a * b.data, t.backend, (b,), lambda g: (g * a,))
    ad, bd = a.data, b.data

    def backward(g):
        ga = unbroadcast(xp, g * bd, ad.shape) if a.requires_grad else None
        gb = unbroadcast(xp, g * ad, bd.shape) if b.requires_grad else None
        return ga, gb

    return Tensor.from_op(ad * bd, t.backend, (a, b), backward)


@op
def div(a, b) -> Tensor:
    a, b, t = _binary(a, b, floats=True)
    xp = t.xp
    if not isinstance(b, Tensor):
        return Tensor.from_op(a.data / b, t.backend, (a,), lambda g: (g / b,))
    bd = b.data
    if not isinstance(a, Tensor):
        out = a / bd
        return Tensor.from_op(out, t.backend, (b,), lambda g: (-g * out / bd,))
    ad = a.data
    out = ad / bd

    def backward(g):
        ga = unbroadcast(xp, g / bd, ad.shape) if a.requires_grad else None
        gb = unbroadcast(xp, -g * out / bd, bd.shape) if b.requires_grad else None
        return ga, gb

    return Tensor.from_op(out, t.backend, (a, b), backward)


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

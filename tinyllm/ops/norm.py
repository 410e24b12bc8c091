"""layer_norm and rms_norm over the last axis, each with a fused backward."""
from __future__ import annotations

from ..autograd import Tensor
from ._util import floating
from .kernels import kernel, reference
from .registry import op


def _sum_lead(xp, g, n):
    """Sum over all but the last axis -> shape (n,)."""
    return xp.sum(xp.reshape(g, (-1, n)), axis=0)


@reference("layer_norm")
def layer_norm_kernel(xp, x, w, b, eps):
    n = x.shape[-1]
    mu = xp.mean(x, axis=-1, keepdims=True)
    xc = x - mu
    rstd = 1.0 / xp.sqrt(xp.mean(xc * xc, axis=-1, keepdims=True) + eps)
    xhat = xc * rstd  # (..., C)
    out = xhat
    if w is not None:
        out = out * w
    if b is not None:
        out = out + b

    def backward(g):
        gw = _sum_lead(xp, g * xhat, n) if w is not None else None
        gb = _sum_lead(xp, g, n) if b is not None else None
        dxhat = g * w if w is not None else g
        dx = rstd * (dxhat - xp.mean(dxhat, axis=-1, keepdims=True)
                     - xhat * xp.mean(dxhat * xhat, axis=-1, keepdims=True))
        return dx, gw, gb

    return out, backward


@reference("rms_norm")
def rms_norm_kernel(xp, x, w, eps):
    n = x.shape[-1]
    rrms = 1.0 / xp.sqrt(xp.mean(x * x, axis=-1, keepdims=True) + eps)
    xhat = x * rrms  # (..., C)
    out = xhat * w if w is not None else xhat

    def backward(g):
        dxhat = g * w if w is not None else g
        dx = rrms * (dxhat - xhat * xp.mean(dxhat * xhat, axis=-1, keepdims=True))
        return dx, (_sum_lead(xp, g * xhat, n) if w is not None else None)

    return out, backward


def _normed(x: Tensor, params: tuple, out, backward) -> Tensor:
    """The output Tensor; the kernel's gradients for absent (None) parameters are dropped."""
    parents = (x,) + tuple(p for p in params if p is not None)
    if len(parents) == 1 + len(params):
        return Tensor.from_op(out, x.backend, parents, backward)
    keep = (True,) + tuple(p is not None for p in params)
    return Tensor.from_op(out, x.backend, parents, lambda g: tuple(d for d, k in zip(backward(g), keep) if k))


def _data(t):
    return None if t is None else t.data


@op
@floating
def layer_norm(x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    out, backward = kernel(x.backend, "layer_norm")(x.xp, x.data, _data(weight), _data(bias), eps)
    return _normed(x, (weight, bias), out, backward)


@op
@floating
def rms_norm(x: Tensor, weight: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    out, backward = kernel(x.backend, "rms_norm")(x.xp, x.data, _data(weight), eps)
    return _normed(x, (weight,), out, backward)

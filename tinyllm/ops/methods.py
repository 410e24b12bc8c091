"""Tensor's operators and methods (x + y, x @ w, x[i], x.sum(), x.reshape(...)), bound onto Tensor here,
where the ops live, as Chainer binds Variable's arithmetic: tinyllm/autograd.py sits below the ops and never
imports them. ops/__init__ runs install() on import, and importing anything of tinyllm imports the ops."""
from __future__ import annotations

from ..autograd import Tensor
from . import activation, elementwise as ew, linalg, reduce, shape


def _reshape(self, *dims):
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    return shape.reshape(self, dims)


def _permute(self, *axes):
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    return shape.permute(self, axes)


# name on Tensor -> the op (the op's first argument is the tensor itself)
METHODS = {
    "__add__": ew.add, "__radd__": lambda self, o: ew.add(o, self),
    "__sub__": ew.sub, "__rsub__": lambda self, o: ew.sub(o, self),
    "__mul__": ew.mul, "__rmul__": lambda self, o: ew.mul(o, self),
    "__truediv__": ew.div, "__rtruediv__": lambda self, o: ew.div(o, self),
    "__neg__": ew.neg, "__pow__": ew.pow, "__matmul__": linalg.matmul, "__getitem__": shape.getitem,
    "sum": reduce.sum, "mean": reduce.mean, "max": reduce.max,
    "exp": ew.exp, "log": ew.log, "sqrt": ew.sqrt, "tanh": ew.tanh, "sigmoid": ew.sigmoid, "relu": ew.relu,
    "gelu": ew.gelu, "softmax": activation.softmax, "log_softmax": activation.log_softmax, "astype": ew.cast,
    "reshape": _reshape, "permute": _permute, "transpose": shape.transpose,
    "T": property(lambda self: shape.transpose(self, -2, -1)),
}


def install() -> None:
    """Bind METHODS onto Tensor (idempotent)."""
    for name, fn in METHODS.items():
        setattr(Tensor, name, fn)

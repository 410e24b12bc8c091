"""The table of differentiable ops. Every op registers here, and the test
suite fails for any registered op that has no gradient-check entry.

@op returns a thin dispatcher, and that dispatcher is what every module and
every `from tinyllm.ops import gelu` holds. While a hook is set (the
profiler sets one) each call goes through it, so an op is seen however it
was imported; with no hook the cost is one extra call.

The dispatcher also keeps one device per op: tensors from two devices are
refused with one DeviceError naming both (moving is explicit: Tensor.to),
and on a device with a "current device" (CUDA) the op runs inside its
backend's context.
"""
from __future__ import annotations

import functools

from backends import DeviceError

from ..autograd import Tensor

OPS: dict = {}
_hook = None  # hook(name, fn, args, kwargs) -> fn's result, or None


def op(fn):
    name = fn.__name__

    @functools.wraps(fn)
    def dispatch(*args, **kwargs):
        be = _one_backend(name, args, kwargs)
        if be is not None and be.has_context:
            with be.activate():
                return fn(*args, **kwargs) if _hook is None else _hook(name, fn, args, kwargs)
        if _hook is None:
            return fn(*args, **kwargs)
        return _hook(name, fn, args, kwargs)

    OPS[name] = dispatch
    return dispatch


def set_hook(hook):
    """Route every op call through hook(name, fn, args, kwargs); returns the previous hook."""
    global _hook
    prev, _hook = _hook, hook
    return prev


def _one_backend(name: str, args, kwargs):
    """The backend of the op's tensors (None if it got none); DeviceError for two."""
    found = None
    for a in (*args, *kwargs.values()):
        if isinstance(a, Tensor):
            group = (a,)
        elif isinstance(a, (list, tuple)) and a and isinstance(a[0], Tensor):  # concat
            group = a
        else:
            continue
        for t in group:
            b = t.backend
            if found is None:
                found = b
            elif b is not found and b != found:
                raise DeviceError(f"{name}() got tensors on two devices, {found.name} and {b.name}; "
                                  f"move one first, e.g. tensor.to({found.name!r})")
    return found

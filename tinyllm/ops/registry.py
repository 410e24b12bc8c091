"""The table of differentiable ops. Every op registers here, and the test
suite fails for any registered op that has no gradient-check entry.

@op returns a thin dispatcher, and that dispatcher is what every module and
every `from tinyllm.ops import gelu` holds. While a hook is set (the
profiler sets one) each call goes through it, so an op is seen however it
was imported; with no hook the cost is one extra call.
"""
from __future__ import annotations

import functools

OPS: dict = {}
_hook = None  # hook(name, fn, args, kwargs) -> fn's result, or None


def op(fn):
    name = fn.__name__

    @functools.wraps(fn)
    def dispatch(*args, **kwargs):
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

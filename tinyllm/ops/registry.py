"""The table of differentiable ops. Every op registers here, and the test
suite fails for any registered op that has no gradient-check entry."""
from __future__ import annotations

OPS: dict = {}


def op(fn):
    OPS[fn.__name__] = fn
    return fn

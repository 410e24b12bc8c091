"""Embedding lookup: gather rows forward, scatter-add them back."""
from __future__ import annotations

from ..tensor import Tensor
from .registry import op


def _index_data(idx, like: Tensor):
    if isinstance(idx, Tensor):
        return idx.data
    b = like.backend
    return idx if b.is_array(idx) else b.from_host(idx, "int64")


@op
def embedding(weight: Tensor, idx) -> Tensor:
    """weight[idx] for an integer array idx of any shape -> idx.shape + (C,)."""
    xp = weight.xp
    w = weight.data
    i = _index_data(idx, weight)
    flat = xp.reshape(i, (-1,))
    # strict refuses W[idx] on 2-D arrays; take + reshape works everywhere
    out = xp.reshape(xp.take(w, flat, axis=0), tuple(i.shape) + tuple(w.shape[1:]))
    backend = weight.backend

    def backward(g):
        gw = xp.zeros(w.shape, dtype=g.dtype)
        return (backend.scatter_add(gw, flat, xp.reshape(g, (flat.shape[0],) + tuple(w.shape[1:]))),)

    return Tensor._make(out, backend, (weight,), backward)

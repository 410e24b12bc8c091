"""Embedding lookup: gather rows forward, scatter-add them back."""
from __future__ import annotations

from ..autograd import Tensor
from ..ids import check_token_ids
from ._util import device_array
from .registry import op


@op
def embedding(weight: Tensor, idx) -> Tensor:
    """weight[idx] for an integer array idx of any shape -> idx.shape + (C,)."""
    xp = weight.xp
    w = weight.data
    check_token_ids(idx, w.shape[0], "embedding's ids")  # host ids, before they go over
    i = device_array(idx, weight.backend, "int64")
    flat = xp.reshape(i, (-1,))
    # strict refuses W[idx] on 2-D arrays; take + reshape works everywhere
    out = xp.reshape(xp.take(w, flat, axis=0), tuple(i.shape) + tuple(w.shape[1:]))
    backend = weight.backend

    def backward(g):
        rows = xp.reshape(g, (flat.shape[0],) + tuple(w.shape[1:]))  # (N, C)
        gw = xp.zeros(w.shape, dtype=g.dtype, device=backend.device)
        return (backend.scatter_add(gw, flat, rows),)

    return Tensor.from_op(out, backend, (weight,), backward)

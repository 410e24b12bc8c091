"""Embedding lookup: gather rows forward, their gradient rows added back (a RowGrad: no (V, C) array)."""
from __future__ import annotations

from ..autograd import RowGrad, Tensor
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
        # only the rows that were looked up: the engine adds them into the weight's gradient in place
        rows = xp.reshape(g, (flat.shape[0],) + tuple(w.shape[1:]))  # (N, C)
        return (RowGrad(flat, rows, tuple(w.shape)),)

    return Tensor.from_op(out, backend, (weight,), backward)

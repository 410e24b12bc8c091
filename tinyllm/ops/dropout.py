"""Inverted dropout: zero a fraction p, scale the rest by 1/(1-p). The mask is made
on the device by a counter-based generator (tinyllm/random.py)."""
from __future__ import annotations

from ..random import RandomStream, global_stream
from ..autograd import Tensor
from ._util import floating
from .registry import op


@op
@floating
def dropout(x: Tensor, p: float, rng: RandomStream | None = None, training: bool = True) -> Tensor:
    """rng: the RandomStream to draw the mask from (None: the global stream, seeded by
    tinyllm.manual_seed); identity when not training or p == 0."""
    if not training or p == 0.0:
        return x
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    if rng is None:
        rng = global_stream()
    xp = x.xp
    fused = getattr(x.backend.fast, "dropout", None)  # one kernel: the same mask, its words made in place
    if fused is not None:
        with x.backend.activate():
            out, backward = fused(xp, x.data, p, rng.seed, rng.site, rng.counter, rng.rows)
        rng.counter += 1  # one draw, as keep_mask takes
        return Tensor.from_op(out, x.backend, (x,), backward)
    keep = rng.keep_mask(x.backend, x.shape, p)
    mask = xp.astype(keep, x.dtype) * (1.0 / (1.0 - p))
    return Tensor.from_op(x.data * mask, x.backend, (x,), lambda g: (g * mask,))

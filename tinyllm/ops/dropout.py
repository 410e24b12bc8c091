"""Inverted dropout: zero a fraction p, scale the rest by 1/(1-p)."""
from __future__ import annotations

from ..tensor import Tensor
from .registry import op


@op
def dropout(x: Tensor, p: float, rng=None, training: bool = True) -> Tensor:
    """rng: a backends.RNG (seeded, host-side); identity when not training or p == 0."""
    if not training or p == 0.0:
        return x
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    if rng is None:
        rng = x.backend.rng(None)
    xp = x.xp
    keep = rng.uniform(x.shape, dtype=x.backend.dtype_name(x.dtype)) >= p
    scale = 1.0 / (1.0 - p)
    mask = xp.astype(keep, x.dtype) * scale
    return Tensor._make(x.data * mask, x.backend, (x,), lambda g: (g * mask,))

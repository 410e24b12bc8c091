"""Losses: fused, numerically stable cross-entropy and mean squared error."""
from __future__ import annotations

from ..autograd import Tensor
from ..ids import check_token_ids
from ._util import as_float, broadcast_error, broadcasts, device_array, floating, lift, shape_of
from .kernels import kernel, reference
from .registry import op


@reference("cross_entropy")
def cross_entropy_kernel(xp, z, t):
    """z (N, V), t (N,) int -> per-row loss (N,); backward(scale (N,)) -> (dz,)."""
    m = xp.max(z, axis=-1, keepdims=True)
    e = xp.exp(z - m)
    s = xp.sum(e, axis=-1, keepdims=True)
    picked = xp.take_along_axis(z, t[:, None], axis=-1)  # (N, 1)
    loss_rows = (xp.log(s) + m - picked)[:, 0]  # (N,)

    def backward(scale_rows):
        p = e / s
        onehot = t[:, None] == xp.arange(z.shape[-1], dtype=t.dtype, device=t.device)[None, :]
        return ((p - xp.astype(onehot, p.dtype)) * scale_rows[:, None],)

    return loss_rows, backward


@op
@floating
def cross_entropy(logits: Tensor, targets, ignore_index: int | None = None) -> Tensor:
    """Mean over targets of -log softmax(logits)[target].

    logits (..., V), targets (...) of integers. Rows whose target equals
    ignore_index count neither in the sum nor in the mean.
    """
    xp = logits.xp
    backend = logits.backend
    v = logits.shape[-1]
    z = xp.reshape(logits.data, (-1, v))  # (N, V)
    check_token_ids(targets, v, "cross_entropy's targets", skip=ignore_index)  # host targets, before they go over
    t = device_array(targets, backend, "int64")
    t = xp.reshape(t, (-1,))  # (N,)
    if t.shape[0] != z.shape[0]:
        raise ValueError(f"cross_entropy: {z.shape[0]} rows of logits but {t.shape[0]} targets")
    valid = None
    if ignore_index is not None:
        valid = t != ignore_index
        t = xp.where(valid, t, xp.zeros_like(t))
    loss_rows, rows_backward = kernel(backend, "cross_entropy")(xp, z, t)
    if valid is not None:
        w = xp.astype(valid, z.dtype)
        n = xp.sum(w)
        n = xp.where(n > 0, n, xp.ones_like(n))
        loss = xp.sum(loss_rows * w) / n
    else:
        w = None
        n = float(z.shape[0])
        loss = xp.mean(loss_rows)
    shape = tuple(logits.shape)

    def backward(g):
        scale = g / n if w is None else w * (g / n)
        if w is None:
            scale = xp.broadcast_to(xp.reshape(scale, (1,)), (z.shape[0],))
        (dz,) = rows_backward(scale)
        return (xp.reshape(dz, shape),)

    return Tensor.from_op(loss, backend, (logits,), backward)


@op
@floating
def mse_loss(pred: Tensor, target) -> Tensor:
    """Mean of (pred - target)^2; target gets a gradient too if it needs one."""
    target = lift(target, pred)
    if isinstance(target, Tensor):
        target = as_float(target, pred)
    xp = pred.xp
    try:
        diff = pred.data - (target.data if isinstance(target, Tensor) else target)
    except Exception:
        if broadcasts(pred.shape, shape_of(target)):
            raise
        raise broadcast_error("mse_loss", pred, target) from None
    n = 1
    for s in diff.shape:
        n *= s

    def backward(g):
        gp = diff * (2.0 * g / n)
        return (gp, -gp) if isinstance(target, Tensor) else (gp,)

    parents = (pred, target) if isinstance(target, Tensor) else (pred,)
    return Tensor.from_op(xp.mean(diff * diff), pred.backend, parents, backward)

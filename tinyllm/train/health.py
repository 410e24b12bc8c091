"""Network health at each evaluation: per parameter tensor, its weight norm, its gradient norm (the last
step's, after clipping) and the update-to-weight ratio of that step (|w_after - w_before| / |w_before|).

Cheap by construction: the weights are copied on the device (one flat copy, no transfer) only before a step
that ends in an evaluation, the norms are computed on the device and travel with the evaluation's losses in
its one read (evaluation.evaluate's `extra`). The eval record in log.jsonl gets
"health": {name: {"weight": w, "grad": g, "update": u}} (grad and update null at step 0).
Samples at each evaluation go in the same record ("samples": [...]), drawn with the run's seed.
"""
from __future__ import annotations

from ..sample import complete
from .reads import counting

WEIGHTS_ATTR = "health_weights"  # the trainer attribute holding the copy of the flat weights


def keep_weights(t, end: int) -> None:
    """Before Trainer t's next step: when that step ends in an evaluation, copy the flat weights (on the
    device) so the evaluation can measure the step's update; otherwise drop any earlier copy."""
    nxt = t.step + 1
    if nxt % t.config.eval_interval == 0 or nxt == end:
        flat = t.optimizer.flat
        with flat.backend.activate():
            setattr(t, WEIGHTS_ATTR, flat.backend.xp.asarray(flat.data, copy=True))
    else:
        setattr(t, WEIGHTS_ATTR, None)


def _named_indices(t) -> list:
    """(name, index in the optimizer's flat arrays) for each of the model's parameters."""
    where = {id(p): i for i, p in enumerate(t.optimizer.flat.params)}
    return [(name, where[id(p)]) for name, p in t.model.named_parameters() if id(p) in where]


def measure(t):
    """(names, a float32 device array of 3 norms per parameter: weight, grad, update ratio; or None when the
    model has no parameters in the optimizer). Nothing is read here."""
    flat = t.optimizer.flat
    xp = flat.backend.xp
    named = _named_indices(t)
    if not named:
        return [], None
    before = getattr(t, WEIGHTS_ATTR, None)
    stepped = t.step > 0 and any(flat.params[i].grad is not None for _, i in named)
    vals = []
    with flat.backend.activate():
        for _, i in named:
            sl = flat.span(i, i + 1)
            w = flat.data[sl]
            wn = _norm(xp, w)
            g = _norm(xp, flat.grad[sl]) if stepped else xp.zeros_like(wn)
            if before is not None and stepped:
                old = before[sl]
                u = _norm(xp, w - old) / (_norm(xp, old) + 1e-12)
            else:
                u = xp.zeros_like(wn)
            vals += [wn, g, u]
        arr = xp.astype(xp.stack(vals), xp.float32)
    setattr(t, WEIGHTS_ATTR, None)
    return [n for n, _ in named], (arr, stepped, before is not None)


def _norm(xp, a):
    return xp.sqrt(xp.vecdot(a, a))


def unpack(names: list, host: list, stepped: bool, had_copy: bool) -> dict:
    """{name: {"weight", "grad", "update"}} from the host values measure() produced (None where not measured)."""
    out = {}
    for k, name in enumerate(names):
        w, g, u = host[3 * k:3 * k + 3]
        out[name] = {"weight": _num(w), "grad": _num(g) if stepped else None,
                     "update": _num(u) if stepped and had_copy else None}
    return out


def _num(v: float):
    return float(f"{v:.5g}") if v == v and abs(v) != float("inf") else None


def eval_samples(t) -> list:
    """A few samples of the model at this evaluation (config.samples of them, one for text data), drawn with
    the run's seed; [] with --samples 0. Counted as their own phase: the evaluation's read stays one."""
    n = t.config.samples
    if not n or not t.world.root:
        return []
    text_data = t.tokenizer.bos_id is None
    was = t.model.training
    t.model.eval()
    try:
        with counting(t, "samples"):
            return complete(t.model, t.tokenizer, "", 1 if text_data else n,
                            None, 1.0, None, None, t.config.seed)
    finally:
        t.model.train(was)

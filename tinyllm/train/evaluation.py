"""The loss on both splits, every eval_interval steps: measured, recorded, printed."""
from __future__ import annotations

from ..autograd import no_grad
from . import health
from .reads import counting


def evaluation_read(t, extra):
    """evaluate() with the config's iters and batch size, `extra` read along."""
    return evaluate(t, t.config.eval_iters, t.config.batch_size, extra)


def evaluate(t, iters: int, batch_size: int, extra=None) -> dict:
    """Mean loss of Trainer t's model over `iters` batches of each split (the same batches every call);
    the losses are summed on the device and read once. extra: a float device array read in the same
    read (the network health), returned as a list under "extra"."""
    rows = t.parallel.rows(batch_size)  # [dist] this rank's rows of each batch
    be = t.backend
    xp = be.xp
    was = t.model.training
    t.model.eval()
    try:
        with no_grad(), be.activate():
            sums = []
            for k, batches in enumerate((t.train_batches, t.val_batches)):
                rng = be.rng(10_000 + k)
                losses = [t._loss(*batches.batch(batch_size, rng, rows)).data for _ in range(iters)]
                sums.append(xp.sum(xp.astype(xp.stack(losses), xp.float64)))
            both = xp.stack(sums)
            if extra is not None:
                both = xp.concat([both, xp.astype(extra, xp.float64)])
            host = be.to_host(both)
            train, val = t.parallel.mean_host(host[:2], batch_size).tolist()  # [dist]
    finally:
        t.model.train(was)
    out = {"train": train / iters, "val": val / iters}
    if extra is not None:
        out["extra"] = host[2:].tolist()
    return out


def eval_and_log(t, sec_per_step: float, tok_per_s: float, lr: float | None = None) -> None:
    """Evaluate at t.step; the record goes to t.evals, log.jsonl and the console."""
    with counting(t, "eval"):
        names, measured = health.measure(t)
        arr = measured[0] if measured is not None else None
        ev = evaluation_read(t, arr)
    lr = t.schedule(t.step) if lr is None else lr
    rec = {"step": t.step, "train": ev["train"], "val": ev["val"], "lr": lr,
           "ms_per_step": round(sec_per_step * 1000, 2), "tok_per_s": round(tok_per_s), "skipped": t.skipped}
    t.evals.append(rec)
    t.last_eval = rec
    extra = {"health": health.unpack(names, ev["extra"], *measured[1:])} if measured is not None else {}
    samples = health.eval_samples(t)
    if samples:
        extra["samples"] = samples
    t.log.record({"event": "eval", **rec, **extra})
    t.log.eval_line(rec, t.config.steps)

"""The loss on both splits, every eval_interval steps: measured, recorded, printed."""
from __future__ import annotations

from ..autograd import no_grad
from .reads import counting


def evaluate(t, iters: int, batch_size: int) -> dict:
    """Mean loss of Trainer t's model over `iters` batches of each split (the same batches every call);
    the losses are summed on the device and read once."""
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
            train, val = t.parallel.mean_host(be.to_host(xp.stack(sums)), batch_size).tolist()  # [dist]
    finally:
        t.model.train(was)
    return {"train": train / iters, "val": val / iters}


def eval_and_log(t, sec_per_step: float, tok_per_s: float, lr: float | None = None) -> None:
    """Evaluate at t.step; the record goes to t.evals, log.jsonl and the console."""
    with counting(t, "eval"):
        ev = t.evaluate()
    lr = t.schedule(t.step) if lr is None else lr
    rec = {"step": t.step, "train": ev["train"], "val": ev["val"], "lr": lr,
           "ms_per_step": round(sec_per_step * 1000, 2), "tok_per_s": round(tok_per_s), "skipped": t.skipped}
    t.evals.append(rec)
    t.last_eval = rec
    t.log.record({"event": "eval", **rec})
    t.log.eval_line(rec, t.config.steps)

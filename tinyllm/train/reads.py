"""What the step loop reads back from the device, and the count of what crosses.

A step leaves its loss and gradient norm on the device (Trainer._pending); one
read takes those of every step since the last, every log_interval steps and
before an evaluation or a save. Each read records the losses, stops the run on
a non-finite one (or counts it skipped: --skip-nonfinite) and writes a step
record to log.jsonl.
"""
from __future__ import annotations

import contextlib
import time

from backends import TransferStats

from ..errors import NonFiniteError
from ..guards import check_finite, is_finite

MAX_CONSECUTIVE_SKIPS = 20  # with --skip-nonfinite: give up when the weights themselves went bad


@contextlib.contextmanager
def counting(t, phase: str):
    """Add what crossed between host and device inside the block to t.transfers[phase]."""
    before = t.backend.stats.copy()
    try:
        yield
    finally:
        tot = t.transfers.setdefault(phase, {"calls": 0, **TransferStats().as_dict()})
        tot["calls"] += 1
        for k, v in (t.backend.stats - before).as_dict().items():
            tot[k] += v


def read_pending(t) -> None:
    """One read for the loss and gradient norm of every step of Trainer t since the last read."""
    if not t._pending:
        return
    be = t.backend
    with be.activate():
        vals = be.to_host(be.xp.stack([a for pair in t._pending for a in pair])).tolist()
    first = t.step - len(t._pending) + 1
    t._pending = []
    for k in range(len(vals) // 2):
        _take(t, first + k, vals[2 * k], vals[2 * k + 1])
    if t.losses and t.losses[-1] is not None:
        t.log.show_loss(t.losses[-1])
    _record(t, vals[-2], vals[-1], len(vals) // 2)


def _take(t, step: int, loss: float, norm: float) -> None:
    """Record one step's loss; NonFiniteError where it (or the norm) is not finite, unless skipping."""
    skipping = t.config.skip_nonfinite
    try:
        check_finite(step, loss, norm, skipping=skipping)
    except NonFiniteError as e:
        if not skipping:
            raise
        t.skipped += 1
        t._consecutive += 1
        t.losses.append(None)
        t.log.warn(f"{e} -- update skipped ({t.skipped} so far)")
        if t._consecutive >= MAX_CONSECUTIVE_SKIPS:
            raise NonFiniteError(f"{t._consecutive} steps in a row were non-finite (last: step {step}); the "
                                 f"weights themselves have diverged. Lower lr (--lr) and start again") from None
        return
    t._consecutive = 0
    t.losses.append(loss)


def _record(t, loss: float, norm: float, n: int) -> None:
    """log.jsonl's record of a read: the last step's loss, lr and gradient norm, the tokens/s over the n steps
    since the last read, the seconds since the loop began (t._read_clock: the loop's start, the last read)."""
    now = time.perf_counter()
    start, last = t._read_clock
    t._read_clock = (start, now)
    tok_per_s = t.config.batch_size * t.block_size * n / max(now - last, 1e-9)
    t.log.record({"event": "step", "step": t.step, "loss": loss if is_finite(loss) else None,
                  "lr": t.schedule(t.step - 1), "grad_norm": norm if is_finite(norm) else None,
                  "tok_per_s": round(tok_per_s), "elapsed": round(now - start, 3)})

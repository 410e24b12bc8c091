"""Data-parallel training over a world of ranks (ChainerMN's pattern), as the Trainer calls it.

- `--batch-size` is the global batch: every rank draws the same batch from the
  same seeded RNG and keeps its own rows (rank r of N: rows r*B//N .. (r+1)*B//N).
- After backward, one Allreduce sums the flat gradient buffer, each rank's share
  weighted by its rows / B, so the sum is the global batch's mean gradient; the
  loss and a stop flag ride in the same buffer. Every rank then clips and steps
  identically. Dropout masks are the rank's rows of the whole batch's masks.
  So N ranks give 1 process's losses and weights to float rounding.
- At start every rank checks its settings against rank 0's (DistError, exit 2,
  on every rank) and takes rank 0's weights and optimizer state.
- Rank 0 alone writes (checkpoints, log.jsonl, plot, samples, console).
"""
from __future__ import annotations

import contextlib
import os
import threading

from backends import cuda_device_count

from ..guards import InterruptGuard
from ..version import __version__
from .stop import RankGuard
from .world import DistError, picklable


def rank_device(spec: str, world) -> str:
    """A GPU of its own for each rank of a machine: "auto" or "cuda" -> cuda:(local_rank % GPUs)."""
    if world.size == 1 or not isinstance(spec, str) or spec.strip().lower() not in ("auto", "cuda", "gpu"):
        return spec
    count = cuda_device_count()
    if not count:
        return spec  # auto -> cpu; cuda -> the usual fallback warning
    return f"cuda:{world.local_rank % count}"


def rank_log(log_class, world, out: str, verbose: bool):
    """The trainer's RunLog on rank 0; on the other ranks one that writes and prints nothing."""
    if world.root:
        return log_class(out, verbose)

    class SilentLog(log_class):
        def print(self, line: str) -> None: ...
        def warn(self, line: str) -> None: ...
        def start_new(self) -> None: ...
        def record(self, rec: dict) -> None: ...
        def plot(self, losses, evals, title, run_id=None) -> bool: return False

    return SilentLog(out, False)


class DataParallel:
    """The trainer's view of the world: its rows of a batch, the gradient Allreduce, who writes."""

    def __init__(self, world, backend):
        self.world, self.backend = world, backend
        self.size = world.size
        self.root = world.root
        # CuPy arrays go to a CUDA-aware MPI as they are; everything else is staged through the host
        self.device_buffers = world.cuda_aware and backend.kind == "cuda"
        self.lock = threading.Lock()  # held while a step changes the state a stop snapshot reads
        self.boundary_rng = None      # the batch RNG's state after the last whole step
        self.boundary_step = 0        # and that step
        self.stop_guard = None        # the run's RankGuard, whose stop request rides in the Allreduce
        self.saver = None             # pid of rank 0's stop-snapshot writer
        self.saved_step = None        # the step it saves
        self.last_flag = None         # CUDA-aware: the host buffer the last step's stop flag is being copied into

    def describe(self) -> str:
        return "" if self.size == 1 else f" | {self.size} MPI ranks, each a share of the batch"

    # -- rows of a global batch -------------------------------------------------------------------
    def rows(self, batch_size: int) -> slice | None:
        if self.size == 1:
            return None
        r, n = self.world.rank, self.size
        return slice(r * batch_size // n, (r + 1) * batch_size // n)

    def weight(self, batch_size: int) -> float:
        rows = self.rows(batch_size)
        return 1.0 if rows is None else (rows.stop - rows.start) / batch_size

    def shard_dropout(self, dropouts, batch_size: int) -> None:
        rows = self.rows(batch_size)
        for d in dropouts:
            if d.stream is not None:
                d.stream.rows = None if rows is None else (rows.start, batch_size)

    # -- collectives -----------------------------------------------------------------------------
    def _allreduce(self, buf) -> float:
        """buf (a flat device array: gradients, loss, stop flag last) summed over the ranks in place, in one
        Allreduce -> the stop flag, as a host number, without a device read of its own. Staged: through a
        host buffer made once (pinned on a GPU), the flag read there. CUDA-aware: buf itself goes to MPI and
        its flag is queued into a pinned buffer, read at the next step after the wait MPI needs anyway, so
        a stop takes one step more there (on every rank alike)."""
        be, n = self.backend, buf.shape[0]
        dtype = be.dtype_name(buf.dtype)
        if self.device_buffers:
            be.synchronize()  # MPI does not know the device's queue; this also ends the last flag's copy
            flag = float(self.last_flag[0]) if self.last_flag is not None else 0.0
            self.world.allreduce_sum(buf)
            self.last_flag = be.to_host_into(buf[n - 1:], be.host_buffer("allreduce-flag", 1, dtype), wait=False)
            return flag
        host = be.to_host_into(buf, be.host_buffer("allreduce", n, dtype))
        self.world.allreduce_sum(host)
        be.from_host_into(buf, host)
        return float(host[n - 1])

    def reduce_step(self, opt, loss, batch_size: int):
        """After backward: the flat gradients and the loss become the global batch's, in one Allreduce that
        also carries a stop request (the guard's .local: a signal seen here), so every rank stops at the same
        step. Returns the global loss (a device scalar); sets guard.requested when any rank asked to stop."""
        if self.size == 1:
            return loss
        guard = self.stop_guard
        be, flat, w = self.backend, opt.flat, self.weight(batch_size)
        xp = be.xp
        with be.activate():
            flat.sync()
            n = flat.total
            stop = 1.0 if getattr(guard, "local", False) else 0.0
            buf = xp.concat([flat.grad * w, xp.reshape(xp.astype(loss, flat.dtype) * w, (1,)),
                             xp.full((1,), stop, dtype=flat.dtype, device=be.device)])  # (n + 2,)
            flag = self._allreduce(buf)
            flat.grad[...] = buf[:n]
        if flag > 0 and not guard.requested:
            guard.requested = True
            if not getattr(guard, "local", False):
                guard.signum = guard.REMOTE_SIGNAL
        return buf[n]

    def mean_host(self, host, batch_size: int):
        """Per-rank means of a host array (its rows of a batch) -> the global batch's, on every rank."""
        if self.size == 1:
            return host
        host = host * self.weight(batch_size)
        self.world.allreduce_sum(host)
        return host

    def agree(self, trainer) -> None:
        """Every rank: the same settings, data, step and model as rank 0 (else DistError on all), then rank 0's
        weights and optimizer state."""
        if self.size == 1:
            return
        cfg = trainer.config
        mine = {"settings": cfg.to_dict(), "tinyllm": __version__, "data": trainer.data_info.get("fingerprint"),
                "step": trainer.step, "model": trainer.model_name,
                "parameters": trainer.model.num_parameters()}
        everyone = self.world.allgather(mine)
        for r, theirs in enumerate(everyone):
            diff = _differences(everyone[0], theirs)
            if diff:
                raise DistError(f"rank {r} does not match rank 0: {diff}; start every rank with the same flags, "
                                f"files and tinyllm")
        if cfg.batch_size < self.size:
            raise DistError(f"--batch-size {cfg.batch_size} is the global batch, split across {self.size} ranks; "
                            f"give each rank a row at least: --batch-size {self.size} or more, or fewer ranks")
        be, opt = self.backend, trainer.optimizer
        with be.activate():
            for a in [opt.flat.data, *opt.state.values()]:
                host = be.to_host(a)
                self.world.bcast_buffer(host)
                a[...] = be.from_host(host)

    # -- who writes ----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def output(self, out: str, prepare, lock_class):
        """Rank 0 creates the output directory and holds the run lock; the others write nothing."""
        if not self.root:
            yield
            return
        prepare(out)
        with lock_class(out):
            yield

    @contextlib.contextmanager
    def saving(self, step: int):
        """-> whether to save: rank 0 only, and never beside its stop-snapshot writer (the snapshot waits
        for this save; this save waits for the snapshot's writer and skips the step it saved)."""
        if self.size == 1:
            yield True
            return
        if not self.root:
            yield False
            return
        with self.lock:
            if self.saver is not None:
                try:
                    os.waitpid(self.saver, 0)
                except ChildProcessError:
                    pass
            yield step != self.saved_step

    @contextlib.contextmanager
    def update(self, trainer):
        """Around the optimizer step and the step count: a stop snapshot sees whole steps only."""
        if self.size == 1:
            yield
            return
        with self.lock:
            yield
            self.boundary_rng = trainer.rng.get_state()
            self.boundary_step = trainer.step + 1  # the loop counts the step after this

    def guard(self, trainer):
        """The signal guard of a run: an InterruptGuard for one process, else a RankGuard."""
        if self.size == 1:
            return InterruptGuard()
        self.stop_guard = RankGuard(self, trainer)
        return self.stop_guard


def _differences(a: dict, b: dict) -> str:
    out = []
    for k in sorted(set(a) | set(b)):
        if k == "settings":
            sa, sb = a[k], b[k]
            out += [f"{f}={sb.get(f)!r} (rank 0: {sa.get(f)!r})" for f in sorted(set(sa) | set(sb))
                    if sa.get(f) != sb.get(f)]
        elif a.get(k) != b.get(k):
            out.append(f"{k} {b.get(k)!r} (rank 0: {a.get(k)!r})")
    return ", ".join(out)


@contextlib.contextmanager
def collective_errors(world):
    """Around the Trainer's set-up: under MPI an error on any rank becomes an error on every rank (the first
    failing rank's, one line each), so no rank waits forever in a collective the failed one never reaches."""
    if world.size == 1:
        yield
        return
    err = None
    try:
        yield
    except Exception as e:  # noqa: BLE001 -- shared with the other ranks, then raised here
        err = e
    errors = world.allgather(None if err is None else picklable(err))
    if err is not None:
        raise err
    first = next((e for e in errors if e is not None), None)
    if first is not None:
        raise first


__all__ = ["DataParallel", "collective_errors", "rank_device", "rank_log"]

"""Stopping every rank together, and saving before Open MPI's SIGKILL.

Open MPI answers Ctrl-C or SIGTERM to mpiexec by sending SIGTERM to every rank
and SIGKILL about 0.25 s later (measured with Open MPI 5.0.11; no setting
lengthens it): too soon to finish a step, and the main thread may be waiting in
an Allreduce, where Python runs no signal handler. So on rank 0 a thread wakes
on the signal (signal.set_wakeup_fd), takes the state of the last whole step
(the step's update holds DataParallel.lock) and forks a writer in a session of
its own, which Open MPI does not kill; it saves the checkpoint crash-safely, as
always, and exits. A signal that reaches one rank alone (`kill PID`, a
scheduler) rides in the next step's Allreduce (DataParallel.reduce_step): every
rank stops after that same step, and rank 0 saves it there as well.
"""
from __future__ import annotations

import os
import signal
import sys
import threading

from ..guards import SIGNALS, InterruptGuard, signal_name


class RankGuard(InterruptGuard):
    """InterruptGuard for a rank: .local is a signal seen here, .requested the ranks' common decision."""

    REMOTE_SIGNAL = signal.SIGTERM  # what a rank that saw no signal itself reports (143)

    def __init__(self, parallel, trainer):
        super().__init__(message="{what}: stopping every rank after this step (rank 0 saves a checkpoint)")
        self.parallel, self.trainer = parallel, trainer
        self.local = False
        self._pipe = None
        self._old_fd = None

    def _handler(self, signum, frame):
        if self.local:  # Open MPI sends SIGTERM more than once, then SIGKILL: that is the "at once"
            return
        self.local, self.signum = True, signum
        if self.parallel.root:
            _say(self.message.format(what=signal_name(signum)))

    def __enter__(self) -> "RankGuard":
        if threading.current_thread() is not threading.main_thread():
            return self
        super().__enter__()  # this guard's handler for SIGINT and SIGTERM
        self.parallel.boundary_rng = self.trainer.rng.get_state()
        self.parallel.boundary_step = self.trainer.step
        if self.parallel.root:
            r, w = os.pipe()
            os.set_blocking(w, False)
            self._pipe = (r, w)
            self._old_fd = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
            threading.Thread(target=self._wake, args=(r,), name="tinyllm-stop", daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        if self._pipe is not None:
            signal.set_wakeup_fd(self._old_fd if self._old_fd is not None else -1)
            os.close(self._pipe[1])  # ends the thread's read
            self._pipe = None
        super().__exit__(*exc)

    def _wake(self, fd: int) -> None:
        try:
            while True:
                data = os.read(fd, 1)
                if not data:
                    return
                if data[0] in SIGNALS:
                    self._snapshot(data[0])
                    return
        finally:
            os.close(fd)

    def _snapshot(self, signum: int) -> None:
        """Rank 0: save the last whole step now, from a process Open MPI's SIGKILL does not reach."""
        p, t = self.parallel, self.trainer
        with p.lock:  # no step, and no save of the main thread (DataParallel.saving), meanwhile
            if p.saver is not None:
                return
            tensors, meta = t.state()
            step = meta["step"] = p.boundary_step
            meta["rng"]["batch"] = p.boundary_rng
            _say(f"{signal_name(signum)}: rank 0 saves step {step} in {t.out}/ at once (Open MPI stops every rank "
                 f"within a second); continue with: tinyllm train --resume --out {t.out}")
            pid = os.fork()
            if pid != 0:
                p.saver, p.saved_step = pid, step
                return
        try:  # the writer: its own session, only this thread, no MPI
            os.setsid()
            t.write_checkpoint(tensors, meta)
        except BaseException as e:  # noqa: BLE001 -- one line, then out
            _say(f"error: the checkpoint of step {step} was not saved: {e}")
        finally:
            _end()


def _end() -> None:
    """End the writer now, without atexit handlers (mpi4py's would finalize MPI from a forked child). Nobody
    reads its status: a failure has said so in one line."""
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _say(line: str) -> None:
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass

"""Guards for a training loop: non-finite values, Ctrl-C, out of memory (below train/, distributed/ and
models/, which all use them).

check_finite(step, loss, grad_norm) raises NonFiniteError naming the step and
the value. InterruptGuard turns the first SIGINT or SIGTERM (what `kill` and
job schedulers send) into a request (the loop finishes its step, saves and
exits 128 + the signal: 130 or 143) and the second into an immediate
Interrupted. oom_message(exc) turns an out-of-memory exception (CuPy's
OutOfMemoryError, found by name so tinyllm/ never imports cupy; or a host
MemoryError) into one line with the size asked and the fix.
"""
from __future__ import annotations

import math
import os
import re
import signal
import sys
import threading

from .errors import EXIT_INTERRUPTED, Interrupted, NonFiniteError  # noqa: F401  (re-exported)
from .memory import human_bytes

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _bad(x) -> str | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return None


def check_finite(step: int, loss: float, grad_norm: float | None = None, skipping: bool = False) -> None:
    """Raise NonFiniteError if loss or grad_norm is nan/inf (grad_norm None: not checked).
    skipping: --skip-nonfinite is on (the message then does not suggest it)."""
    for what, v in (("loss", loss), ("gradient norm", grad_norm)):
        b = _bad(v) if v is not None else None
        if b:
            fix = "" if skipping else ", or pass --skip-nonfinite to skip such steps"
            raise NonFiniteError(f"step {step}: the {what} is {b}; training diverged. Lower the learning rate "
                                 f"(e.g. --lr), keep --grad-clip on{fix}")


def is_finite(*values) -> bool:
    return all(_bad(v) is None for v in values if v is not None)


def point_at_devnull(stream) -> None:
    """Point a closed stdout/stderr (a pipe whose reader left, as `| head` does) at /dev/null, so
    later writes and the interpreter's final flush do not fail again."""
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, stream.fileno())
        os.close(fd)
    except (OSError, ValueError):  # no file descriptor (a notebook): nothing to redirect
        pass


def signal_name(signum: int) -> str:
    return {signal.SIGINT: "interrupt (Ctrl-C)", signal.SIGTERM: "SIGTERM"}.get(signum, f"signal {signum}")


class InterruptGuard:
    """with InterruptGuard() as g: ... if g.requested: save, then raise TrainingInterrupted(msg, g.signum).

    First SIGINT or SIGTERM: sets .requested (and .signum) and prints one line.
    A second one raises Interrupted at once. The previous handlers are restored
    on exit. Outside the main thread (where Python cannot install handlers) it
    is a no-op whose .requested stays False.
    """

    def __init__(self, message: str = "{what}: finishing this step and saving a checkpoint "
                                      "(send it again to stop at once)"):
        self.message = message
        self.requested = False
        self.signum = signal.SIGINT
        self._old: dict = {}

    def _handler(self, signum, frame):
        if self.requested:
            raise Interrupted(f"second {signal_name(signum)}: stopped at once; the last saved checkpoint is intact",
                              signum)
        self.requested, self.signum = True, signum
        try:
            print(self.message.format(what=signal_name(signum)), file=sys.stderr, flush=True)
        except (OSError, ValueError):  # stderr closed: the request stands
            pass

    def __enter__(self) -> "InterruptGuard":
        if threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                self._old[s] = signal.getsignal(s)
                signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for s, old in self._old.items():
            signal.signal(s, old if old is not None else signal.SIG_DFL)
        self._old = {}


_CUPY_OOM = re.compile(r"Out of memory allocating ([\d,]+) bytes(?: \(allocated so far: ([\d,]+) bytes\))?")
_NUMPY_OOM = re.compile(r"Unable to allocate ([\d.]+ [KMGTPE]?i?B)")
_FIX = "use a smaller --batch-size or --block-size (or a smaller model)"


def oom_message(exc: BaseException) -> str | None:
    """One line for an out-of-memory exception, None for anything else."""
    name = type(exc).__name__
    text = str(exc)
    m = _CUPY_OOM.search(text)
    if name == "OutOfMemoryError" or m:
        if m:
            asked = human_bytes(int(m.group(1).replace(",", "")))
            so_far = f" with {human_bytes(int(m.group(2).replace(',', '')))} already in use" if m.group(2) else ""
            return f"out of GPU memory: allocating {asked} failed{so_far}; {_FIX}"
        return f"out of GPU memory; {_FIX}"
    if "cudaErrorMemoryAllocation" in text:
        return f"out of GPU memory (cudaErrorMemoryAllocation); {_FIX}"
    if isinstance(exc, MemoryError):
        m = _NUMPY_OOM.search(text)
        asked = f": allocating {m.group(1)} failed" if m else ""
        return f"out of host memory{asked}; {_FIX}"
    return None

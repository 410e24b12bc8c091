"""Guards for a training loop: non-finite values, Ctrl-C, out of memory.

check_finite(step, loss, grad_norm) raises NonFiniteError naming the step and
the value. InterruptGuard turns the first SIGINT into a request (the loop
finishes its step, saves and exits 130) and the second into an immediate
KeyboardInterrupt. oom_message(exc) turns an out-of-memory exception (CuPy's
OutOfMemoryError, found by name so tinyllm/ never imports cupy; or a host
MemoryError) into one line with the size asked and the fix.
"""
from __future__ import annotations

import math
import re
import signal
import sys
import threading

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C


class NonFiniteError(ValueError):
    """The loss or the gradient norm became nan or inf."""


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


def check_finite(step: int, loss: float, grad_norm: float | None = None) -> None:
    """Raise NonFiniteError if loss or grad_norm is nan/inf (grad_norm None: not checked)."""
    for what, v in (("loss", loss), ("gradient norm", grad_norm)):
        b = _bad(v) if v is not None else None
        if b:
            raise NonFiniteError(f"step {step}: the {what} is {b}; training diverged. Lower the learning rate "
                                 f"(e.g. --lr), keep --grad-clip on, or pass --skip-nonfinite to skip such steps")


def is_finite(*values) -> bool:
    return all(_bad(v) is None for v in values if v is not None)


class InterruptGuard:
    """with InterruptGuard() as g: ... if g.requested: save, print, exit 130.

    First SIGINT: sets .requested and prints one line. Second SIGINT: raises
    KeyboardInterrupt at once. The previous handler is restored on exit.
    Outside the main thread (where Python cannot install handlers) it is a
    no-op whose .requested stays False.
    """

    def __init__(self, message: str = "interrupt: finishing this step and saving a checkpoint "
                                      "(press Ctrl-C again to stop at once)"):
        self.message = message
        self.requested = False
        self.count = 0
        self._old = None
        self._installed = False

    def _handler(self, signum, frame):
        self.count += 1
        if self.requested:
            raise KeyboardInterrupt("second interrupt: stopping at once")
        self.requested = True
        print(self.message, file=sys.stderr, flush=True)

    def __enter__(self) -> "InterruptGuard":
        if threading.current_thread() is threading.main_thread():
            self._old = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handler)
            self._installed = True
        return self

    def __exit__(self, *exc) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._old if self._old is not None else signal.default_int_handler)
            self._installed = False


def human_bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"


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

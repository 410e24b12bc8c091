"""OpenBLAS's one setting that must be in place before NumPy loads it.

After every call OpenBLAS's worker threads spin for 2^28 cycles (about
0.1 s) waiting for the next one, so with two threads a worker keeps the
second core busy for the whole training step, and the kernels' own helper
thread (backends/threads.py) runs beside a spinning thread at half speed.
OPENBLAS_THREAD_TIMEOUT=4 (2^4 cycles, the least OpenBLAS takes) makes a
worker sleep as soon as its part is done; waking it costs a few
microseconds a matmul. Measured here (cpu-small, 2 threads, kernels split):
90.0 ms a step with the default, 84.3 with 20, 75.9 with 4.

OpenBLAS reads the variable once, when it is loaded, so this module runs
before anything in backends imports numpy; a value the user set is kept.
If NumPy was imported before tinyllm, the setting comes too late, and
WORKERS_SLEEP says so: the kernels then do not split (threads.py).
"""
from __future__ import annotations

import os
import sys

TIMEOUT = "4"  # log2 of the cycles a worker spins after a call (OpenBLAS takes 4..30; default 28)
SLEEPS_AT = 16  # workers that spin at most 2^16 cycles (~30 us) leave the core to the kernels

_preset = os.environ.get("OPENBLAS_THREAD_TIMEOUT")
_late = "numpy" in sys.modules  # OpenBLAS is loaded already: a value set now is not read
if _preset is None and not _late:
    os.environ["OPENBLAS_THREAD_TIMEOUT"] = TIMEOUT


def _in_effect() -> int:
    value = _preset if _preset is not None else (None if _late else TIMEOUT)
    try:
        return int(value) if value is not None and int(value) > 0 else 28  # 0: OpenBLAS's default
    except ValueError:
        return 28


WORKERS_SLEEP = _in_effect() <= SLEEPS_AT  # OpenBLAS workers sleep right after a call

"""OpenBLAS's one setting that must be in place before NumPy loads it: OPENBLAS_THREAD_TIMEOUT=4,
so a worker sleeps as soon as its part is done instead of spinning ~0.1 s (2^28 cycles) beside the
kernels' helper thread, which then ran at half speed (docs/speed.md). OpenBLAS reads it once, when
loaded, so backends/__init__ imports this first; a value the user set is kept. If NumPy came first
it is too late, WORKERS_SLEEP says so, and the kernels do not split (threads.py).
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

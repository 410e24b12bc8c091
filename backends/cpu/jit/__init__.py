"""numba's compiled loops for the CPU kernels that are many cheap passes in NumPy: layer norm
(norm.py), GELU (gelu.py), the Adam update (adam.py), the embedding's scatter-add (scatter.py)
and attention's passes between its matmuls (attention.py, exp.py); and MKL's GEMM caller
(gemm.py). Each loop is one pass where NumPy makes several, each with its own call and
temporaries, and releases the GIL, so a kernel's pieces run on the thread policy's helpers.

Those modules import numba at their top; this one imports them only when numba is usable and
TINYLLM_NO_JIT is off, and compiles their float32 versions at once (seconds the first time, then
loaded from numba's on-disk cache), so a broken numba fails here, not in a training step.
float64, which only the gradient checks use, compiles on its first call.
"""
from __future__ import annotations

from types import SimpleNamespace

from ...env import flag

_loops = None  # the compiled loops once built; False when numba is not usable
_gemm = None  # gemm.call once built; False without the loops


def _build() -> SimpleNamespace:
    from . import adam, attention, exp, gelu, norm, scatter

    modules = (norm, gelu, adam, scatter, exp, attention)
    for m in modules:
        m.compile_float32()
    return SimpleNamespace(**{name: getattr(m, name) for m in modules for name in m.LOOPS})


def jit_loops() -> "SimpleNamespace | None":
    """The compiled loops by name (ln_forward, gelu_forward, adam, scatter_rows, att_softmax, ...),
    or None without a usable numba or with TINYLLM_NO_JIT on: the NumPy passes serve."""
    global _loops
    if _loops is None:
        _loops = False
        if flag("TINYLLM_NO_JIT"):
            return None
        try:
            _loops = _build()
        except Exception:  # numba missing, or built against another NumPy
            _loops = False
    return _loops or None


def gemm_caller():
    """gemm.call, the compiled caller of MKL's sgemm, or None where the loops are not usable
    (ctypes serves). Compiled, or loaded from the cache, on the first call."""
    global _gemm
    if _gemm is None:
        _gemm = False
        if jit_loops() is not None:
            try:
                from .gemm import call

                _gemm = call
            except Exception:  # a numba that cannot build it
                _gemm = False
    return _gemm or None

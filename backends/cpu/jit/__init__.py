"""numba's compiled loops for the CPU kernels that are many cheap passes in NumPy (layer norm,
GELU, Adam, scatter-add, attention's passes, cross-entropy) and MKL's GEMM caller: one pass where NumPy makes
several, releasing the GIL so that the thread policy's helpers run pieces at once.

The loop modules import numba at their top; jit_loops() imports them only when numba is usable and
TINYLLM_NO_JIT is off, and compiles float32 at once (later runs load it from numba's disk cache), so
a broken numba fails there, not in a training step. float64 (the gradient checks) compiles on use.
"""
from __future__ import annotations

from types import SimpleNamespace

from ...env import flag

_loops = None  # the compiled loops once built; False when numba is not usable
_gemm = None  # gemm.call once built; False without the loops


def _build() -> SimpleNamespace:
    from . import adam, attention, exp, gelu, loss, norm, scatter

    modules = (norm, gelu, adam, scatter, exp, attention, loss)
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

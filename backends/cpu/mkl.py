"""The CPU's 2-D matmuls through Intel MKL's GEMM where the `mkl` wheel is installed (the [fast]
extra on x86-64 Linux) and the CPU is Intel's: faster than OpenBLAS on the shapes measured
(docs/speed.md). NumPy's BLAS otherwise, or with TINYLLM_NO_MKL on. Operands are passed as they
lie (a transposed one with the transpose flag): no copies.

MKL is set up through its own calls, which reach neither other processes nor PyTorch's MKL (_load):
strict reproducibility, TBB threads, LP64 integers. With PyTorch in the same process, import torch
first: imported after MKL was loaded here, its own step ran much slower (docs/speed.md).
"""
from __future__ import annotations

import ctypes
import glob
import os
import sys

from types import SimpleNamespace

import numpy as np

from ..env import flag
from .info import cpu_info, cpu_vendor

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112  # mkl_cblas.h
_CBWR_AVX2, _CBWR_AVX512, _CBWR_STRICT = 10, 12, 0x10000  # mkl_types.h
_LP64 = 0  # mkl_service.h: MKL_INTERFACE_LP64
_THREADING_SEQUENTIAL, _THREADING_TBB = 1, 4  # mkl_service.h: MKL_THREADING_SEQUENTIAL, MKL_THREADING_TBB
_why_not = None  # why MKL is not used, once _load() refused it
_gemm = None  # once loaded: gemm {dtype: cblas function}, local_threads, branch, call and at (jit/gemm.py); False when MKL is not usable


def _library() -> "str | None":
    """Path of libmkl_rt from the `mkl` wheel (it installs into <prefix>/lib, beside TBB's), or None."""
    if not sys.platform.startswith("linux"):
        return None
    import site

    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix, site.getuserbase())):  # venv, system, pip --user
        found = sorted(glob.glob(os.path.join(prefix, "lib", "libmkl_rt.so*")))
        if found:
            return found[0]
    return None


def _threads_from_env() -> "int | None":
    """MKL_NUM_THREADS, else OMP_NUM_THREADS, as MKL reads them, if set to a positive integer."""
    for name in ("MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        try:
            n = int(os.environ.get(name, "").split(",")[0])
        except ValueError:
            continue
        if n > 0:
            return n
    return None


def _refuse(reason: str):
    global _why_not
    _why_not = reason
    return False


def _load():
    if flag("TINYLLM_NO_MKL"):
        return _refuse("TINYLLM_NO_MKL is on")
    path = _library()
    if path is None:
        return _refuse("the mkl wheel is not installed")
    vendor = cpu_vendor()
    if vendor not in (None, "GenuineIntel"):  # MKL's strict CNR modes refuse other CPUs (MKL_CBWR_Set: -3 on an AMD EPYC)
        return _refuse(f"MKL's reproducible mode runs on Intel CPUs only (this one is {vendor})")
    # TBB threads, or none: MKL's default, Intel OpenMP, gave wrong products on two threads once GNU OpenMP
    # was in the process first, as `import torch` puts it there (its omp_* calls bound to GNU's runtime)
    try:  # MKL finds TBB (its dependency, beside it) only if it is loaded already: not on the loader's path
        ctypes.CDLL(os.path.join(os.path.dirname(path), "libtbb.so.12"))
        layer = _THREADING_TBB
    except OSError:
        layer = _THREADING_SEQUENTIAL
    try:
        lib = ctypes.CDLL(path)
        # 32-bit integers (as the argtypes below) and the threads chosen here, whatever MKL_INTERFACE_LAYER
        # or MKL_THREADING_LAYER say: both must be set before MKL's first call
        if lib.MKL_Set_Interface_Layer(_LP64) != _LP64 or lib.MKL_Set_Threading_Layer(layer) != layer:
            return _refuse("MKL refused LP64 integers or its threading layer")
        # strict reproducibility (CNR): without it a product's bits changed with the arrays' alignment or the
        # thread count, so a run and its resumed twin drifted apart
        avx512 = "avx512f" in cpu_info()[1]
        if lib.MKL_CBWR_Set((_CBWR_AVX512 if avx512 else _CBWR_AVX2) | _CBWR_STRICT) != 0:  # not reproducible here: keep NumPy's BLAS
            return _refuse("MKL's reproducible mode (strict CNR) is not supported on this CPU")
        fns = {np.dtype(np.float32): (lib.cblas_sgemm, ctypes.c_float),
               np.dtype(np.float64): (lib.cblas_dgemm, ctypes.c_double)}
        local_threads = lib.MKL_Set_Num_Threads_Local
        wanted = _threads_from_env()
        if wanted:  # MKL on TBB does not read these itself (OpenBLAS and MKL on OpenMP do)
            local_threads(wanted)  # for this thread, as threadpoolctl sets MKL's pool (its global setting had no effect)
    except (OSError, AttributeError) as e:
        return _refuse(f"MKL could not be loaded ({e})")
    for fn, scalar in fns.values():
        ptr, i = ctypes.c_void_p, ctypes.c_int
        fn.argtypes = [i, i, i, i, i, i, scalar, ptr, i, ptr, i, scalar, ptr, i]
        fn.restype = None
    from .jit import gemm_caller

    return SimpleNamespace(gemm={dt: fn for dt, (fn, _) in fns.items()}, local_threads=local_threads,
                           branch="AVX512" if avx512 else "AVX2", call=gemm_caller(),
                           at=(ctypes.cast(lib.cblas_sgemm, ctypes.c_void_p).value, np.float32(1.0)))


def architecture() -> "str | None":
    """The kernel branch MKL's products run (the reproducibility mode pins it), or None without MKL."""
    if not gemm_available():
        return None
    return _gemm.branch + ", strict CNR"


def one_thread_here() -> None:
    """MKL at one thread for calls from this thread (a helper that runs one part of a split kernel).
    threadpoolctl sizes MKL's pool for the calling thread only (MKL_Set_Num_Threads_Local), so the
    policy's setting does not reach its helpers: the policy runs this on each of them."""
    if _gemm:
        _gemm.local_threads(1)


def why_not() -> "str | None":
    """Why the 2-D matmuls do not go to MKL (None when they do)."""
    return None if gemm_available() else _why_not


def in_use(controller) -> bool:
    """Whether a threadpoolctl controller is a BLAS tinyllm calls: MKL loaded but refused (say its
    reproducible mode failed) runs nothing, so its pool is not the policy's to size or count."""
    return controller.internal_api != "mkl" or gemm_available()


def blas_controllers() -> list:
    """threadpoolctl's controllers of the BLAS libraries this process loaded and tinyllm calls: the
    pools the thread policy sizes (an MKL loaded but refused runs nothing, so it is not one)."""
    from threadpoolctl import ThreadpoolController

    return [c for c in ThreadpoolController().select(user_api="blas").lib_controllers if in_use(c)]


def gemm_available() -> bool:
    global _gemm
    if _gemm is None:
        _gemm = _load()
    return _gemm is not False


def _operand(a):
    """(trans flag, leading dimension) for a 2-D operand MKL can read in place, or None."""
    rows, cols = a.shape
    if a.flags.c_contiguous:
        return _NO_TRANS, max(1, cols)
    if a.flags.f_contiguous:
        return _TRANS, max(1, rows)
    item = a.itemsize
    s0, s1 = a.strides  # a view with a row stride (a slice of columns), or its transpose
    if s1 == item and s0 % item == 0 and s0 // item >= max(1, cols):
        return _NO_TRANS, s0 // item
    if s0 == item and s1 % item == 0 and s1 // item >= max(1, rows):
        return _TRANS, s1 // item
    return None


def matmul2d(a, b, out=None):
    """a @ b for 2-D float arrays of one dtype, by MKL when it is loaded and
    the operands suit it (each contiguous along one axis); else NumPy's. out, if given: a C-contiguous
    (m, n) array of a's dtype to write the product into (a kept one, reuse.py)."""
    if not gemm_available() or a.ndim != 2 or b.ndim != 2 or a.dtype != b.dtype:
        return np.matmul(a, b, out=out)
    fn = _gemm.gemm.get(a.dtype)
    (m, k), n = a.shape, b.shape[1]
    if fn is None or m == 0 or n == 0 or k == 0 or k != b.shape[0] or max(m, n, k) >= 2**31:
        return np.matmul(a, b, out=out)
    pa, pb = _operand(a), _operand(b)
    if pa is None or pb is None:
        return np.matmul(a, b, out=out)
    out = np.empty((m, n), dtype=a.dtype) if out is None else out
    if _gemm.call is not None and a.dtype == np.float32 and a.flags.writeable and b.flags.writeable:
        address, one = _gemm.at  # numba's caller (jit/gemm.py): float32, writeable operands
        _gemm.call(address, pa[0], pb[0], a, pa[1], b, pb[1], out, one)
    else:
        fn(_ROW_MAJOR, pa[0], pb[0], m, n, k, 1.0, a.ctypes.data, pa[1], b.ctypes.data, pb[1], 0.0, out.ctypes.data, n)
    return out

"""Launch shapes and argument helpers shared by the CUDA backend's kernel callers."""
from __future__ import annotations

import numpy as np

BLOCK = 128  # the row kernels' block (kernels/common.cuh: TL_BLOCK)
FLAT = 256  # threads a block for the element-wise kernels


def grid(n: int, block: int = FLAT) -> tuple:
    """Blocks enough for n threads (at least one)."""
    return (max(1, -(-n // block)),)


def suffix(dtype) -> str:
    """The kernels' name suffix for a dtype: f32 or f64."""
    return {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}[np.dtype(dtype)]


def contig(xp, a):
    """a itself when C-contiguous (a kernel reads it flat), else a C-contiguous copy."""
    return a if a.flags.c_contiguous else xp.asarray(a, copy=True)

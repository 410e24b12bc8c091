"""The float32 matmul precision on a GPU: full float32 by default (CuPy's default, and PyTorch's), TF32
tensor cores only when asked (TINYLLM_TF32). CuPy reads CUPY_TF32 once, at its first float32 matmul, so
the choice is written there before CuPy is imported; a CUPY_TF32 set by hand is replaced, so that the one
switch is tinyllm's."""
from __future__ import annotations

import os

from ..env import flag


def apply_precision() -> bool:
    """Set CUPY_TF32 from TINYLLM_TF32; whether TF32 is on."""
    tf32 = flag("TINYLLM_TF32")
    os.environ["CUPY_TF32"] = "1" if tf32 else "0"
    return tf32

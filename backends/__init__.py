"""Floor 1: the only package that imports numpy, cupy or array_api_strict.

One folder (or file) per device: cpu/, cuda/, strict.py. At the root, what every device shares:
the Backend (base.py), device selection (select.py, devices.py), errors, file I/O, the fused
kernels' signatures (kernels.py) and the environment variables (env.py).
"""
from .cpu import blas_env  # noqa: F401  (first: OpenBLAS reads its settings when numpy loads it)
from .base import RNG, Backend, TransferStats
from .errors import TinyLLMError
from .select import DeviceError, available_backends, backend_of, cuda_device_count, cuda_problem, get_backend


def tune_malloc() -> bool:
    """Keep freed array memory in glibc's heap (backends/cpu/malloc.py); whether it was applied.
    Loaded on call, so that a run that never calls it loads none of the CPU's kernels."""
    from .cpu.malloc import tune_malloc as tune

    return tune()


__all__ = ["Backend", "RNG", "TransferStats", "DeviceError", "get_backend", "backend_of", "available_backends",
           "cuda_problem", "cuda_device_count", "tune_malloc", "TinyLLMError"]

"""Floor 1: the only package that imports numpy, cupy or array_api_strict."""
from . import blas_env  # noqa: F401  (first: OpenBLAS reads its settings when numpy loads it)
from .base import RNG, Backend, TransferStats
from .errors import TinyLLMError
from .fast_cpu import tune_malloc
from .select import DeviceError, available_backends, backend_of, cuda_device_count, cuda_problem, get_backend

__all__ = ["Backend", "RNG", "TransferStats", "DeviceError", "get_backend", "backend_of", "available_backends",
           "cuda_problem", "cuda_device_count", "tune_malloc", "TinyLLMError"]

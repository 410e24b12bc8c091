"""Floor 1: the only package that imports numpy, cupy or array_api_strict."""
from .base import RNG, Backend
from .fast_cpu import tune_malloc
from .select import DeviceError, available_backends, cuda_problem, get_backend

__all__ = ["Backend", "RNG", "DeviceError", "get_backend", "available_backends", "cuda_problem", "tune_malloc"]

"""The CUDA device (CuPy): its backend (backend.py) and why a GPU cannot be used (probe.py).
Importing this package imports no CuPy; making a backend or diagnosing a GPU does."""
from .backend import CUDABackend, DeviceNamespace
from .probe import INSTALL, diagnose, first_line, missing_libraries

__all__ = ["CUDABackend", "DeviceNamespace", "INSTALL", "diagnose", "first_line", "missing_libraries"]

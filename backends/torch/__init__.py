"""PyTorch's tensors as a device (the torch extra): its backend (backend.py) and whether torch can
reach a device (probe.py). Importing this package imports no torch; making a backend or asking does."""
from .probe import INSTALL, auto_kinds, backend_name, installed, status

__all__ = ["INSTALL", "auto_kinds", "backend_name", "installed", "status"]

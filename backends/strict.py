"""array-api-strict: NumPy underneath, but only the standard is allowed.

Running the engine here proves tinyllm/ uses nothing outside the Array API.
"""
from __future__ import annotations

import numpy as np
import array_api_strict

from .base import Backend


class StrictBackend(Backend):
    kind = "strict"

    def __init__(self):
        super().__init__("strict", array_api_strict, device=array_api_strict.Device("CPU_DEVICE"))

    def _from_numpy(self, a):
        return array_api_strict.asarray(np.ascontiguousarray(a))

    def to_host(self, x):
        return np.asarray(x)

    def is_array(self, x) -> bool:
        return isinstance(x, array_api_strict._array_object.Array)

"""array-api-strict: NumPy underneath, but only the standard is allowed.

Running the engine here proves tinyllm/ uses nothing outside the Array API.
"strict:1" and "strict:2" keep their arrays on array-api-strict's other
devices ("device1", "device2"): arrays of two devices refuse to mix and
NumPy refuses to read them, as with a GPU, so a run there proves every
array is made on its tensor's device and every crossing is explicit.
"""
from __future__ import annotations

import numpy as np
import array_api_strict

from .base import Backend

# strict:N -> array-api-strict's device name
DEVICES = ("CPU_DEVICE", "device1", "device2")
_HOST = array_api_strict.Device("CPU_DEVICE")
_ARRAY = type(array_api_strict.asarray(0))  # the array class (the package does not export it by name)


class StrictBackend(Backend):
    kind = "strict"

    def __init__(self, index: int = 0):
        name = "strict" if index == 0 else f"strict:{index}"
        super().__init__(name, array_api_strict, device=array_api_strict.Device(DEVICES[index]))

    def _from_numpy(self, a):
        # a copy: the NumPy array may be another backend's memory (cpu shares, strict must not)
        return array_api_strict.asarray(a, device=self.device, copy=True)

    def _to_numpy(self, x):
        if isinstance(x, np.ndarray):  # already on the host
            return np.array(x, copy=True)
        if x.device != _HOST:
            x = x.to_device(_HOST)
        return np.array(x, copy=True)

    def is_array(self, x) -> bool:
        return isinstance(x, _ARRAY) and x.device == self.device

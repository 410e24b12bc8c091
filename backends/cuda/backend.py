"""CuPy on an NVIDIA GPU. Imported only when a CUDA device is asked for.

CuPy allocates and launches kernels on the thread's *current* device, and
array-api-compat ignores `device=` for CuPy, so a backend for cuda:1 that did
nothing would put its arrays on cuda:0. CUDABackend therefore enters its own
device around every call: its `xp` is the array-api-compat namespace with each
function wrapped in `with device:` (DeviceNamespace), from_host / to_host /
synchronize enter it, and activate() is that context for code that runs
operators (`a + b` launches a kernel too): tinyllm's ops, backward, optimizer,
sampling and training loop enter it. cuda:0 and cuda:1 in one process never
cross.
"""
from __future__ import annotations

import functools
import types

from ..base import Backend, sorted_segment_add


class DeviceNamespace:
    """An array namespace whose every function runs inside `with ctx:` (dtypes and constants pass through)."""

    def __init__(self, xp, ctx):
        self._xp = xp
        self._ctx = ctx

    def __getattr__(self, name):
        v = getattr(self._xp, name)
        if isinstance(v, types.ModuleType):  # xp.linalg, xp.fft
            v = DeviceNamespace(v, self._ctx)
        elif callable(v) and not isinstance(v, type):  # functions; dtypes are classes
            v = _entering(v, self._ctx)
        setattr(self, name, v)  # resolved once
        return v


def _entering(fn, ctx):
    @functools.wraps(fn)
    def on_device(*args, **kwargs):
        with ctx:
            return fn(*args, **kwargs)

    return on_device


class CUDABackend(Backend):
    kind = "cuda"
    has_context = True

    def __init__(self, index: int = 0, cupy=None, xp=None):
        """cupy / xp: the modules to use (tests pass a simulated pair; by default the real ones)."""
        if cupy is None:
            import cupy
        if xp is None:
            import array_api_compat.cupy as xp
        self._cp = cupy
        dev = cupy.cuda.Device(index)
        super().__init__(f"cuda:{index}", DeviceNamespace(xp, dev), device=dev)

    def activate(self):
        return self.device

    def _from_numpy(self, a):
        with self.device:
            return self._cp.asarray(a)

    def _to_numpy(self, x):
        with self.device:
            return self._cp.asnumpy(x)

    def _synchronize(self) -> None:
        with self.device:
            self.device.synchronize()

    def is_array(self, x) -> bool:
        return isinstance(x, self._cp.ndarray) and x.device.id == self.device.id

    def scatter_add(self, target, indices, values):
        """Deterministic (cupyx.scatter_add adds floats with atomics: the last bits vary run to run)."""
        with self.device:
            return sorted_segment_add(self.xp, target, indices, values)

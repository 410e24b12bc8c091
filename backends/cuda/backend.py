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
import threading
import types

from ..base import Backend, sorted_segment_add
from .fused import CudaFused


class OnDevice:
    """`with` this: the device is current inside. Entered only when another device is current (one
    cudaGetDevice to know), so a process that works on one GPU, made current once, pays no context
    switch per call; and CuPy's Device.__exit__, which resets the device it found even to GPU 0 on a
    fresh thread, never runs for it."""

    def __init__(self, device, runtime):
        self.device, self.id, self._runtime = device, device.id, runtime
        self._entered = threading.local()

    def __enter__(self):
        stack = self._entered.__dict__.setdefault("stack", [])
        if self._runtime.getDevice() == self.id:
            stack.append(False)
        else:
            self.device.__enter__()
            stack.append(True)
        return self.device

    def __exit__(self, *exc):
        if self._entered.stack.pop():
            self.device.__exit__(*exc)


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
        """cupy / xp: the modules to use (the simulated pair of backends/cuda/sim.py, or the real ones)."""
        if cupy is None:
            cupy, xp = cupy_modules()
        elif xp is None:
            import array_api_compat.cupy as xp
        self._cp = cupy
        dev = cupy.cuda.Device(index)
        self._on = OnDevice(dev, cupy.cuda.runtime)
        super().__init__(f"cuda:{index}", DeviceNamespace(xp, self._on), device=dev)
        from ..env import flag

        self.fast = None if flag("TINYLLM_NO_CUDA_KERNELS") else CudaFused(cupy)
        if self.fast is None:
            self.philox_words = None  # random.py then makes the words in array ops

    def activate(self):
        return self._on

    def _from_numpy(self, a):
        with self._on:
            return self._cp.asarray(a)

    def _to_numpy(self, x):
        with self._on:
            return self._cp.asnumpy(x)

    def _alloc_host(self, n, dtype):
        """Page-locked (pinned) memory: copies to and from it run at full speed and can be queued without a
        wait."""
        import numpy as np

        return np.ndarray((n,), dtype, buffer=self._cp.cuda.alloc_pinned_memory(max(1, n * dtype.itemsize)))

    def _to_numpy_into(self, x, out, wait):
        with self._on:
            self._cp.asnumpy(x, out=out, blocking=wait)  # wait=False: queued on the current stream

    def _from_numpy_into(self, x, host):
        with self._on:
            x.set(host)  # straight from the (pinned) host buffer, no device temporary

    def _synchronize(self) -> None:
        with self._on:
            self.device.synchronize()

    def is_array(self, x) -> bool:
        return isinstance(x, self._cp.ndarray) and x.device.id == self.device.id

    def matmul_into(self, target, a, b):
        """The product made in target itself (cuBLAS writes its output in place): one launch, where a
        product and a copy into target were two."""
        with self._on:
            if target.flags.c_contiguous and a.dtype == b.dtype == target.dtype and a.ndim == b.ndim == 2:
                return self._cp.matmul(a, b, out=target)
            return super().matmul_into(target, a, b)

    def scatter_add(self, target, indices, values):
        """Deterministic (cupyx.scatter_add adds floats with atomics: the last bits vary run to run)."""
        with self._on:
            if self.fast is not None and target.flags.c_contiguous and indices.dtype == self.xp.int64:
                return self.fast.segment_add(self.xp, target, indices, values)
            return sorted_segment_add(self.xp, target, indices, values)

    def philox_words(self, n: int, seed: int, site: int, step: int):
        """tinyllm.random's words in one kernel (the same bits)."""
        with self._on:
            return self.fast.philox_words(self.xp, n, seed, site, step)


def cupy_module():
    """The simulated CuPy when TINYLLM_CUDA_SIM asks for it (backends/cuda/sim.py), else the real one."""
    from . import sim
    from .precision import apply_precision

    apply_precision()  # full float32 matmuls unless TINYLLM_TF32: before CuPy's first matmul reads it

    if sim.devices_asked():
        return sim.cupy
    import cupy

    return cupy


def cupy_modules():
    """(cupy, its array namespace): the simulated pair, or the real CuPy and array-api-compat's."""
    cupy = cupy_module()
    if getattr(cupy, "simulated", False):
        from . import sim

        return cupy, sim.namespace
    import array_api_compat.cupy as xp

    return cupy, xp

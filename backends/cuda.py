"""CuPy on an NVIDIA GPU. Imported only when a CUDA device is asked for."""
from __future__ import annotations


from .base import Backend


class CUDABackend(Backend):
    kind = "cuda"

    def __init__(self, index: int = 0):
        import cupy
        import array_api_compat.cupy as xp_cupy

        self._cp = cupy
        self.index = index
        super().__init__(f"cuda:{index}", xp_cupy, device=cupy.cuda.Device(index))
        self.device.use()
        from .fast_cuda import load_fast

        self.fast = load_fast(cupy)

    def _from_numpy(self, a):
        with self.device:
            return self._cp.asarray(a)

    def to_host(self, x):
        return self._cp.asnumpy(x)

    def is_array(self, x) -> bool:
        return isinstance(x, self._cp.ndarray)

    def scatter_add(self, target, indices, values):
        import cupyx

        cupyx.scatter_add(target, indices, values)
        return target

    def synchronize(self) -> None:
        self.device.synchronize()

    def memory(self) -> dict:
        pool = self._cp.get_default_memory_pool()
        free, total = self._cp.cuda.runtime.memGetInfo()
        return {
            "pool_used": int(pool.used_bytes()),
            "pool_total": int(pool.total_bytes()),
            "peak": int(getattr(self, "_peak", pool.total_bytes())),
            "device_free": int(free),
            "device_total": int(total),
        }

    def reset_peak_memory(self) -> None:
        self._cp.get_default_memory_pool().free_all_blocks()

"""The Backend object: one per device, the only holder of an array library.

Everything the Array API standard lacks lives here: a seeded host RNG,
scatter-add, host<->device copies, synchronize and memory figures.
"""
from __future__ import annotations

import numpy as np

_DTYPES = ("float32", "float64", "int64", "int32", "uint8", "uint16", "uint32", "bool")  # uints: token streams


class RNG:
    """Seeded random numbers drawn on the host, then moved to the device.

    Same seed -> same numbers on every backend, so a run started on CPU can
    be resumed on a GPU. State is a JSON-serialisable dict (for checkpoints).
    """

    def __init__(self, backend: "Backend", seed: int | None = 0):
        self.backend = backend
        self.gen = np.random.Generator(np.random.PCG64(seed))

    def _out(self, a, dtype):
        return self.backend.from_host(np.ascontiguousarray(a), dtype=dtype)

    def normal(self, shape, std=1.0, mean=0.0, dtype="float32"):
        return self._out(self.gen.normal(mean, std, size=shape), dtype)

    def uniform(self, shape, low=0.0, high=1.0, dtype="float32"):
        return self._out(self.gen.uniform(low, high, size=shape), dtype)

    def integers(self, low, high, shape, dtype="int64"):
        return self._out(self.gen.integers(low, high, size=shape), dtype)

    def permutation(self, n, dtype="int64"):
        return self._out(self.gen.permutation(n), dtype)

    # host-side draws for data pipelines (indices stay Python/host until batched)
    def host_integers(self, low, high, size):
        return self.gen.integers(low, high, size=size)

    def host_random(self):
        return float(self.gen.random())

    def get_state(self) -> dict:
        return self.gen.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.gen.bit_generator.state = state


class Backend:
    """A device and its array namespace.

    name:   "cpu", "strict" or "cuda:N"
    kind:   "cpu", "strict" or "cuda"
    xp:     the array-api-compat namespace used by all of tinyllm/
    fast:   an object with optional fused kernels (or None); tinyllm/ ops use
            them when present and fall back to the standard-only code.
    """

    kind = "base"

    def __init__(self, name: str, xp, device=None):
        self.name = name
        self.xp = xp
        self.device = device
        self.fast = None
        self._cache: dict = {}

    def __repr__(self) -> str:
        return f"Backend({self.name!r})"

    def __str__(self) -> str:
        return self.name

    def __eq__(self, other) -> bool:
        return isinstance(other, Backend) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    # -- dtypes ---------------------------------------------------------
    def dtype(self, d):
        """Map "float32" / "float64" / "int64" / "bool" (or an xp dtype) to xp's dtype."""
        if isinstance(d, str):
            if d not in _DTYPES:
                raise ValueError(f"unknown dtype {d!r}; use one of {', '.join(_DTYPES)}")
            return getattr(self.xp, d)
        return d

    def dtype_name(self, d) -> str:
        for n in _DTYPES:
            if getattr(self.xp, n) == d:
                return n
        raise ValueError(f"unsupported dtype {d}")

    # -- host <-> device --------------------------------------------------
    def from_host(self, a, dtype=None):
        """A host object (NumPy array, list, scalar) -> a device array."""
        a = np.asarray(a)
        if a.dtype.kind in "OUSV":  # None, strings, objects: not numbers (None would become nan)
            raise TypeError(f"an array needs numbers, got {a.dtype} data ({str(a.flat[0])[:20]!r}...)"
                            if a.size else f"an array needs numbers, got {a.dtype} data")
        if dtype is not None:
            a = a.astype(np.dtype(self.dtype_name(self.dtype(dtype))), copy=False)
        return self._from_numpy(a)

    def asarray(self, obj, dtype=None):
        """Any array-like (including this backend's own arrays) -> device array."""
        if self.is_array(obj):
            return obj if dtype is None else self.xp.astype(obj, self.dtype(dtype))
        return self.from_host(obj, dtype)

    def to_host(self, x) -> np.ndarray:
        raise NotImplementedError

    def _from_numpy(self, a: np.ndarray):
        raise NotImplementedError

    def is_array(self, x) -> bool:
        raise NotImplementedError

    # -- what the standard lacks -----------------------------------------
    def rng(self, seed: int | None = 0) -> RNG:
        return RNG(self, seed)

    def scatter_add(self, target, indices, values):
        """target[indices[i]] += values[i] along axis 0, duplicates accumulated.

        Standard-only fallback: a one-hot matmul. Returns the result (may be
        target updated in place on backends that can).
        """
        xp = self.xp
        n = target.shape[0]
        onehot = xp.astype(indices[:, None] == xp.arange(n, dtype=indices.dtype)[None, :], values.dtype)
        flat = xp.reshape(values, (values.shape[0], -1))
        return target + xp.reshape(onehot.T @ flat, target.shape)

    def synchronize(self) -> None:
        pass

    def memory(self) -> dict:
        """Memory figures in bytes where the device has them ({} otherwise)."""
        return {}

    def reset_peak_memory(self) -> None:
        pass

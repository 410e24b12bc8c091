"""The Backend object: one per device, the only holder of an array library.

Everything the Array API standard lacks lives here: a seeded host RNG,
scatter-add, host<->device copies (counted), synchronize, and the device
context a multi-GPU library needs around its calls.
"""
from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass

import numpy as np

# uint8/16/32: token streams; uint64: the counter-based RNG's words
_DTYPES = ("float32", "float64", "int64", "int32", "uint8", "uint16", "uint32", "uint64", "bool")


SCATTER_BLOCK = 1024  # rows of the target the standard-only scatter_add adds at a time


class RNG:
    """Seeded random numbers drawn on the host, then moved to the device.

    Same seed -> same numbers on every backend, so every device starts from
    the same initial weights. State is a JSON-serialisable dict (for checkpoints).
    """

    def __init__(self, backend: "Backend", seed: int | None = 0):
        self.backend = backend
        self.seed = seed
        self.gen = np.random.Generator(np.random.PCG64(seed))

    def _out(self, a, dtype):
        return self.backend.from_host(np.ascontiguousarray(a), dtype=dtype)

    def normal(self, shape, std=1.0, mean=0.0, dtype="float32"):
        return self._out(self.gen.normal(mean, std, size=shape), dtype)

    def uniform(self, shape, low=0.0, high=1.0, dtype="float32"):
        return self._out(self.gen.uniform(low, high, size=shape), dtype)

    def integers(self, low, high, shape, dtype="int64"):
        return self._out(self.gen.integers(low, high, size=shape), dtype)

    def host_integers(self, low, high, size):
        """Host-side draws for data pipelines (indices stay on the host until batched)."""
        return self.gen.integers(low, high, size=size)

    def get_state(self) -> dict:
        return self.gen.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.gen.bit_generator.state = state


@dataclass
class TransferStats:
    """What crossed between host and device: copies in, reads out, and waits."""

    h2d_calls: int = 0   # host -> device copies (from_host)
    h2d_bytes: int = 0
    d2h_calls: int = 0   # device -> host reads (to_host); each one waits for the device
    d2h_bytes: int = 0
    syncs: int = 0       # synchronize() calls

    def copy(self) -> "TransferStats":
        return TransferStats(**asdict(self))

    def __sub__(self, other: "TransferStats") -> "TransferStats":
        return TransferStats(**{k: v - getattr(other, k) for k, v in asdict(self).items()})

    def as_dict(self) -> dict:
        return asdict(self)


class Backend:
    """A device and its array namespace.

    name:   "cpu", "strict", "strict:N" or "cuda:N"
    kind:   "cpu", "strict" or "cuda"
    xp:     the array-api-compat namespace used by all of tinyllm/
    device: the namespace's device object; pass it as `device=` to creation functions
    fast:   an object with optional fused kernels (or None); tinyllm/ ops use
            them when present and fall back to the standard-only code.
    stats:  TransferStats counted by from_host / to_host / synchronize
    """

    kind = "base"
    dtype_names = _DTYPES  # the dtypes a Tensor may hold, by name
    has_context = False  # whether activate() does anything (a device must be made current)
    word_dtype = "uint64"  # tinyllm.random's 32-bit words are held in this (torch: int64, its uint64 cannot shift)

    def __init__(self, name: str, xp, device=None):
        self.name = name
        self.xp = xp
        self.device = device
        self.fast = None
        self.stats = TransferStats()
        self.cache: dict = {}  # small constant arrays the ops keep per device (causal masks), by key

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

    # -- host <-> device (every crossing is counted in self.stats) -------------------
    def from_host(self, a, dtype=None):
        """A host object (NumPy array, list, scalar) -> a device array."""
        a = np.asarray(a)
        if a.dtype.kind in "OUSV":  # None, strings, objects: not numbers (None would become nan)
            raise TypeError(f"an array needs numbers, got {a.dtype} data ({str(a.flat[0])[:20]!r}...)"
                            if a.size else f"an array needs numbers, got {a.dtype} data")
        if dtype is not None:
            a = a.astype(np.dtype(self.dtype_name(self.dtype(dtype))), copy=False)
        self.stats.h2d_calls += 1
        self.stats.h2d_bytes += a.nbytes
        return self._from_numpy(a)

    def to_host(self, x) -> np.ndarray:
        """A device array -> a host NumPy array (a read: it waits for the device)."""
        out = self._to_numpy(x)
        self.stats.d2h_calls += 1
        self.stats.d2h_bytes += out.nbytes
        return out

    def host_buffer(self, key: str, n: int, dtype: str) -> np.ndarray:
        """A host array of n `dtype` elements kept under `key` and handed out again while n and dtype hold:
        a collective's staging buffer is made once, not every step. Page-locked on a GPU (_alloc_host)."""
        kept = self.__dict__.setdefault("_host_buffers", {})
        buf = kept.get(key)
        if buf is None or buf.shape != (n,) or buf.dtype != np.dtype(dtype):
            buf = kept[key] = self._alloc_host(n, np.dtype(dtype))
        return buf

    def to_host_into(self, x, out: np.ndarray, wait: bool = True) -> np.ndarray:
        """A device array copied into the host array `out` (a read). wait=False: where the device can queue
        the copy (a GPU, `out` page-locked) it returns at once, and `out` holds x after the next synchronize()."""
        self._to_numpy_into(x, out, wait)
        self.stats.d2h_calls += 1
        self.stats.d2h_bytes += out.nbytes
        return out

    def from_host_into(self, x, host: np.ndarray):
        """The host array `host` copied into the device array x (same shape), in place; x is returned."""
        self.stats.h2d_calls += 1
        self.stats.h2d_bytes += host.nbytes
        self._from_numpy_into(x, host)
        return x

    def _alloc_host(self, n: int, dtype: np.dtype) -> np.ndarray:
        return np.empty(n, dtype)

    def _to_numpy_into(self, x, out: np.ndarray, wait: bool) -> None:
        out[...] = self._to_numpy(x)

    def _from_numpy_into(self, x, host: np.ndarray) -> None:
        x[...] = self._from_numpy(host)

    def copy_from(self, x, source: "Backend"):
        """An array of another backend, copied here explicitly through the host."""
        if source == self:
            return x
        return self.from_host(source.to_host(x))

    def synchronize(self) -> None:
        """Wait until the device has finished its queued work."""
        self.stats.syncs += 1
        self._synchronize()

    def activate(self):
        """A context in which this backend's device is the current one (kernels
        launch there). Devices without a 'current device' need none."""
        return contextlib.nullcontext()

    def _synchronize(self) -> None:
        pass

    def _to_numpy(self, x) -> np.ndarray:
        raise NotImplementedError

    def _from_numpy(self, a: np.ndarray):
        raise NotImplementedError

    def is_array(self, x) -> bool:
        """True for an array that lives on this backend's device."""
        raise NotImplementedError

    # -- in-place writes the engine makes into gradients (the CPU threads them) ----------------
    def add_into(self, target, value):
        """target += value, in place (same shape); target is returned."""
        target += value
        return target

    def copy_into(self, target, value) -> None:
        """target[...] = value, in place (same shape)."""
        target[...] = value

    def matmul_into(self, target, a, b):
        """target[...] = a @ b (2-D operands of target's dtype), in place; target is returned."""
        target[...] = a @ b
        return target

    # -- what the standard lacks -----------------------------------------
    def rng(self, seed: int | None = 0) -> RNG:
        return RNG(self, seed)

    def scatter_add(self, target, indices, values):
        """target[indices[i]] += values[i] along axis 0, duplicates accumulated, in place; target is returned.

        Standard-only fallback (the standard has no integer-array assignment): a one-hot matmul per block
        of SCATTER_BLOCK rows of target, added into that block's slice, so that nothing of target's size
        is made (only (N, block) and (block, C) arrays).
        """
        xp = self.xp
        n, m = target.shape[0], values.shape[0]
        flat = xp.reshape(values, (m, -1))  # (N, C)
        for a in range(0, n, SCATTER_BLOCK):
            b = min(n, a + SCATTER_BLOCK)
            rows = xp.arange(a, b, dtype=indices.dtype, device=self.device)
            onehot = xp.astype(indices[:, None] == rows[None, :], values.dtype)  # (N, block)
            target[a:b, ...] += xp.reshape(onehot.T @ flat, (b - a,) + tuple(target.shape[1:]))
        return target


def sorted_segment_add(xp, target, indices, values):
    """target[indices[i]] += values[i] along axis 0, in place, deterministically.

    For devices whose scatter-add sums duplicates with atomics (the order, and
    so the last bits, change from run to run): rows are sorted by index, summed
    by a float64 prefix sum (a scan: fixed order), and each row writes its whole
    segment's total, so duplicate indices all write the same value. Needs
    integer-array assignment (NumPy, CuPy).
    """
    n = indices.shape[0]
    if n == 0:
        return target
    order = xp.argsort(indices, stable=True)
    si = xp.take(indices, order)  # (N,) sorted
    rows = xp.astype(xp.take(xp.reshape(values, (n, -1)), order, axis=0), xp.float64)  # (N, C)
    cs = xp.cumulative_sum(rows, axis=0, include_initial=True)  # (N + 1, C)
    first = xp.searchsorted(si, si, side="left")
    last = xp.searchsorted(si, si, side="right")
    seg = xp.take(cs, last, axis=0) - xp.take(cs, first, axis=0)  # (N, C): the total of each row's segment
    target[si] += xp.astype(xp.reshape(seg, (n,) + tuple(target.shape[1:])), target.dtype)
    return target

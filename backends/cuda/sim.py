"""A simulated CuPy: what the CUDA backend does, shown on a machine without a GPU.

Arrays are NumPy arrays tagged with the device that was current when they were made; each thread
has a current device that `with Device(i):` and `Device(i).use()` switch (every switch recorded, as
cudaSetDevice would be); and a kernel refuses arrays of another device than the current one, as
CuPy's do. `RawModule` runs the kernels' own CUDA C++ on the CPU (backends/cuda/cpu_run.py).

It counts what a GPU would pay for (`COUNTS`): `launches`, each call that would launch a kernel
(an elementwise or reduction op, a gather or a scatter, a copy, a matmul and the copies CuPy's
batched matmul makes of operands that are not C-contiguous, a RawKernel); views and metadata do
not count. `contexts`: device-context entries (`with Device(i):`). `h2d` / `d2h`: copies.

TINYLLM_CUDA_SIM=N makes `cuda` / `cuda:i` devices of this simulation (N of them) instead of the
real CuPy: the GPU check's dry run and the tests use it.
"""
from __future__ import annotations

import threading
import types

import array_api_compat.numpy as np_xp
import numpy as np

COUNTS = {"launches": 0, "contexts": 0, "h2d": 0, "d2h": 0, "bytes": 0}
TRACE: "list | None" = None  # a list: each launch appends (what, the tinyllm line that asked for it)
SET_DEVICE: list = []  # every cudaSetDevice the simulation saw: (thread name, device)
ALLOCATED: dict = {}  # device id -> arrays made there
DEVICES = [2]  # how many devices the simulated machine has
_state = threading.local()


def devices_asked() -> int:
    """N when TINYLLM_CUDA_SIM=N asks for N simulated devices (then DEVICES holds it), else 0."""
    from ..env import setting

    raw = setting("TINYLLM_CUDA_SIM").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return 0
    n = int(raw) if raw.isdigit() else 1
    DEVICES[0] = n
    return n


def current() -> int:
    return getattr(_state, "device", 0)


def _set_device(i: int) -> None:
    if i >= DEVICES[0]:
        raise CUDARuntimeError(f"cudaErrorInvalidDevice: invalid device ordinal {i}")
    SET_DEVICE.append((threading.current_thread().name, i))
    _state.device = i


def _nbytes(objs) -> int:
    return sum(a.nbytes for a in objs if isinstance(a, np.ndarray))


def _launch(what: str, n: int = 1, moved: int = 0) -> None:
    """Count n launches that read and write `moved` bytes (whole arrays in and out: an upper bound
    on the memory traffic, no cache)."""
    COUNTS["launches"] += n
    COUNTS["bytes"] += moved if n else 0
    if TRACE is not None and n:
        import traceback

        where = next((f"{f.filename.split('/tinyllm/')[-1]}:{f.lineno} {f.name}" for f in reversed(traceback.extract_stack())
                      if "/tinyllm/" in f.filename and "/backends/" not in f.filename), "?")
        TRACE.append((what, where))


def reset() -> None:
    """Zero the counters and the records (a test's or a measurement's start)."""
    COUNTS.update(launches=0, contexts=0, h2d=0, d2h=0, bytes=0)
    SET_DEVICE.clear()
    ALLOCATED.clear()


class CUDARuntimeError(RuntimeError):
    pass


class CrossDeviceError(ValueError):
    pass


class Device:
    def __init__(self, i: int = 0):
        self.id = int(i)
        self._stack = []

    def __enter__(self):
        COUNTS["contexts"] += 1
        prev = current()
        self._stack.append(prev)
        if prev != self.id:
            _set_device(self.id)
        return self

    def __exit__(self, *exc):
        _set_device(self._stack.pop())  # unconditionally, as CuPy 14's Device.__exit__ does

    def use(self) -> None:
        _set_device(self.id)

    def synchronize(self) -> None:
        pass

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self):
        return hash(("sim-device", self.id))

    def __repr__(self):
        return f"<CUDA Device {self.id} (simulated)>"


def _check(objs) -> None:
    for a in objs:
        if isinstance(a, DevArray) and a.dev != current():
            raise CrossDeviceError(f"Array device must be same as the current device: array device = {a.dev} "
                                   f"while current = {current()}")


def _flat(args):
    for a in args:
        if isinstance(a, (list, tuple)):
            yield from _flat(a)
        else:
            yield a


def _plain(x):
    if isinstance(x, DevArray):
        return x.view(np.ndarray)
    if isinstance(x, (list, tuple)):
        return type(x)(_plain(v) for v in x)
    return x


def _wrap(r):
    """A new array is allocated on the current device."""
    if isinstance(r, DevArray):
        return r
    if isinstance(r, (np.ndarray, np.generic)):
        a = np.asarray(r).view(DevArray)
        a.dev = current()
        ALLOCATED[a.dev] = ALLOCATED.get(a.dev, 0) + 1
        return a
    if isinstance(r, tuple):
        return tuple(_wrap(v) for v in r)
    return r


def _new_memory(result, inputs) -> bool:
    """Whether a call wrote new memory (a kernel) rather than returning a view of an input."""
    outs = [r for r in (result if isinstance(result, tuple) else (result,)) if isinstance(r, np.ndarray)]
    ins = [np.asarray(_plain(a)) for a in inputs if isinstance(a, np.ndarray)]
    return any(not any(np.may_share_memory(_plain(o), i) for i in ins) for o in outs)


def _matmul_copies(args) -> int:
    """CuPy's batched (ndim > 2) matmul copies each operand that is not C-contiguous."""
    arrs = [a for a in args[:2] if isinstance(a, np.ndarray)]
    if len(arrs) == 2 and max(a.ndim for a in arrs) > 2:
        return sum(not a.flags.c_contiguous for a in arrs)
    return 0


_NO_KERNEL = {"empty", "empty_like", "empty_strided"}  # allocation only


class DevArray(np.ndarray):
    """A NumPy array that lives on a simulated device."""

    def __array_finalize__(self, obj):
        self.dev = getattr(obj, "dev", current())  # views keep their base's device

    @property
    def device(self):
        return Device(self.dev)

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kw):
        _check(list(inputs) + list(out or ()))
        copies = _matmul_copies(inputs) if ufunc is np.matmul else 0
        if out:
            kw["out"] = tuple(_plain(o) for o in out)
        r = getattr(ufunc, method)(*_plain(inputs), **kw)
        _launch(ufunc.__name__, 1 + copies, _nbytes(inputs) * (1 + copies) + _nbytes(out or (r,)))
        return out[0] if out and len(out) == 1 else _wrap(r)

    def __array_function__(self, func, types_, args, kwargs):
        flat = list(_flat(list(args) + list(kwargs.values())))
        _check(flat)
        r = func(*_plain(args), **{k: _plain(v) for k, v in kwargs.items()})
        if func.__name__ not in _NO_KERNEL:  # an allocation launches nothing
            _launch(func.__name__, int(_new_memory(r, flat)), _nbytes(flat) + _nbytes(r if isinstance(r, tuple) else (r,)))
        return _wrap(r)

    def __getitem__(self, key):
        if not _basic(key):  # a gather is a kernel; a slice is a view
            _check([self, *_flat([key])])
            r = super().__getitem__(_plain(key))
            _launch("gather", 1, 2 * _nbytes((r,)) + _nbytes(_flat([key])))
            return r
        return super().__getitem__(_plain(key))

    def set(self, host) -> None:
        """CuPy's ndarray.set: copy a host array of this shape in, with no device temporary."""
        _check([self])
        COUNTS["h2d"] += 1
        self.view(np.ndarray)[...] = host

    def __setitem__(self, key, value):
        _check([self, value, *_flat([key])])  # a copy or fill kernel
        super().__setitem__(_plain(key), _plain(value))
        region = self.view(np.ndarray)[_plain(key)] if _basic(key) else _plain(value)
        _launch("setitem", 1, 2 * np.asarray(region).nbytes)


def _basic(key) -> bool:
    return all(k is None or k is Ellipsis or isinstance(k, (int, slice)) for k in (key if isinstance(key, tuple) else (key,)))



class SimNamespace:
    """array-api-compat's NumPy namespace, allocating on the current device and counting kernels."""

    def __getattr__(self, name):
        v = getattr(np_xp, name)
        if callable(v) and not isinstance(v, type):
            fn = v

            def v(*a, **k):
                flat = list(_flat(list(a) + list(k.values())))
                _check(flat)
                before = COUNTS["launches"]
                r = fn(*a, **{kk: (None if kk == "device" else vv) for kk, vv in k.items()})
                if COUNTS["launches"] == before and name not in _NO_KERNEL:  # not counted on the way (a method)
                    if any(isinstance(x, DevArray) for x in flat):
                        _launch(name, int(_new_memory(r, flat)), _nbytes(flat) + _nbytes(r if isinstance(r, tuple) else (r,)))
                    elif name == "asarray":  # from host data: a copy to the device
                        COUNTS["h2d"] += 1
                    else:  # made from nothing: zeros, ones, full, arange ...
                        _launch(name, int(isinstance(r, np.ndarray) and r.size > 0), _nbytes((r,)))
                return _wrap(r)
        setattr(self, name, v)
        return v


class RawKernel:
    """A kernel of a RawModule: runs its CUDA C++ on the CPU (cpu_run), on the current device's arrays."""

    def __init__(self, code: str, name: str):
        from .cpu_run import Kernel

        self._kernel = Kernel(name, code)
        self.name = name

    def __call__(self, grid, block, args, shared_mem=0):
        _check(args)
        _launch(self.name, 1, _nbytes(args))
        self._kernel(grid, block, [_plain(a) for a in args])


class RawModule:
    def __init__(self, code: str, options=(), name_expressions=None):
        self.code = code

    def get_function(self, name: str) -> RawKernel:
        return RawKernel(self.code, name)


def _asarray(a, dtype=None):
    COUNTS["h2d"] += 1
    return _wrap(np.array(_plain(a), dtype=dtype, copy=True))


def _asnumpy(x, out=None, blocking=True):
    """CuPy's: a new host array, or into `out` (blocking=False queues it on the stream: here it is done)."""
    COUNTS["d2h"] += 1
    if out is None:
        return np.array(_plain(x), copy=True)
    out[...] = _plain(x)
    return out


def _alloc_pinned_memory(nbytes: int):
    """Page-locked host memory: here plain host bytes (np.ndarray(buffer=...) takes them)."""
    return bytearray(nbytes)


def _runtime():
    return types.SimpleNamespace(getDeviceCount=lambda: DEVICES[0], driverGetVersion=lambda: 12090,
                                 runtimeGetVersion=lambda: 12090, getDevice=current, setDevice=_set_device,
                                 CUDARuntimeError=CUDARuntimeError)


cupy = types.SimpleNamespace(
    __name__="cupy (simulated)", __version__="sim", simulated=True, ndarray=DevArray, asarray=_asarray, asnumpy=_asnumpy,
    RawModule=RawModule, float32=np.float32, float64=np.float64, matmul=np.matmul,  # DevArray counts the launch
    cuda=types.SimpleNamespace(Device=Device, runtime=_runtime(), alloc_pinned_memory=_alloc_pinned_memory),
)
namespace = SimNamespace()

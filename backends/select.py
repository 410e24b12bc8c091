"""get_backend: parse a device string, check the GPU by talking to the driver,
fall back to CPU with one warning line (or raise with fallback=False)."""
from __future__ import annotations

import sys

from .base import Backend
from .devices import STRICT_DEVICES, names, parse
from .errors import DeviceError

USE = names(quote='"')  # '"auto", "cpu", ... or "strict:N"': what an error about a spelling suggests
_instances: dict[str, Backend] = {}  # name -> the one Backend of that device in this process


def _parse(spec: str) -> tuple[str, int]:
    if not isinstance(spec, str):
        raise DeviceError(f"device must be a string, got {type(spec).__name__}; use {USE}")
    parsed = parse(spec)
    if parsed is None:
        raise DeviceError(f"unknown device {spec!r}; use {USE}")
    return parsed


def _cuda_status(index: int, run_probe: bool = True) -> tuple:
    """(problem or None, CUDA device count or None); run_probe=False: no test run on the device."""
    try:
        from .cuda.backend import cupy_module

        cupy = cupy_module()  # the simulated CuPy where TINYLLM_CUDA_SIM asks for it
    except ImportError:
        from .cuda import INSTALL

        return f"CuPy is not installed; {INSTALL}", None
    except Exception as e:  # a broken CuPy install
        from .cuda import INSTALL, first_line

        return f"CuPy failed to import ({first_line(e)}); reinstall it: {INSTALL}", None
    from .cuda import diagnose

    return diagnose(cupy, index, run_probe)


def cuda_problem(index: int = 0) -> str | None:
    """Why CUDA device `index` cannot be used (the cause and its fix), or None if it can."""
    return _cuda_status(index)[0]


def cuda_device_count() -> int:
    """How many CUDA devices this process can use (0 without CuPy, a driver or a GPU). No device is
    touched: each MPI rank counts the GPUs, then opens only its own (get_backend probes that one)."""
    problem, count = _cuda_status(0, run_probe=False)
    return (count or 0) if problem is None else 0


def _make(kind: str, index: int) -> Backend:
    key = f"{kind}:{index}" if kind in ("cuda", "torch:cuda") or (kind == "strict" and index) else kind
    if key not in _instances:
        if kind.startswith("torch"):
            from .torch.backend import TorchBackend

            _instances[key] = TorchBackend(key)
        elif kind == "cpu":
            from .cpu.backend import CPUBackend

            _instances[key] = CPUBackend()
        elif kind == "strict":
            try:
                from .strict import StrictBackend
            except ImportError:
                raise DeviceError(f"device {key!r} needs array-api-strict, which is not installed; "
                                  f"pip install array-api-strict (it comes with tinyllm's test extra: "
                                  f"pip install \"tinyllm[test]\")") from None
            _instances[key] = StrictBackend(index)
        else:
            from .cuda import CUDABackend

            _instances[key] = CUDABackend(index)
    return _instances[key]


def get_backend(spec: "str | Backend" = "auto", fallback: bool = True) -> Backend:
    """The Backend for a device string.

    "auto": a usable GPU if there is one (CuPy's CUDA, then torch's CUDA or ROCm,
    then torch's MPS), else CPU, silently.
    "cuda" / "cuda:N" (and "torch:cuda:N", "torch:mps"): that GPU; if unusable, CPU with one warning line on
    stderr (fallback=True) or a DeviceError (fallback=False). A GPU index past
    the number of GPUs, or a strict:N array-api-strict lacks, is a DeviceError
    naming the devices there are.
    """
    if isinstance(spec, Backend):
        return spec
    kind, index = _parse(spec)
    if kind == "auto":
        return _auto()
    if kind.startswith("torch"):
        return _torch(kind, index, fallback)
    if kind == "strict" and index >= STRICT_DEVICES:
        raise DeviceError(f"there is no strict:{index}; array-api-strict has strict (= strict:0), strict:1 "
                          f"and strict:2")
    if kind == "cuda":
        if f"cuda:{index}" in _instances:
            return _instances[f"cuda:{index}"]
        problem, count = _cuda_status(index)
        if count and index >= count:
            have = ", ".join(f"cuda:{i}" for i in range(count))
            raise DeviceError(f"there is no cuda:{index}; this machine has {count} CUDA device"
                              f"{'s' if count != 1 else ''}: {have}")
        if problem is not None:
            return _fall_back(f"cuda:{index}", problem, fallback)
    return _make(kind, index)


def _fall_back(name: str, problem: str, fallback: bool) -> Backend:
    """cpu, after one warning line naming why `name` cannot be used; DeviceError with fallback=False."""
    msg = f"{name} is not usable: {problem}"
    if not fallback:
        raise DeviceError(msg)
    try:
        print(f"warning: {msg}. Falling back to cpu.", file=sys.stderr)
    except OSError:  # stderr that cannot be written (>/dev/full): the run goes on without the warning
        pass
    return _make("cpu", 0)


def _auto() -> Backend:
    """CuPy's CUDA, then torch's CUDA/ROCm, then torch's MPS, then cpu (torch's CPU never: NumPy's is
    tinyllm's own); torch is imported only where its build can reach a GPU."""
    if cuda_problem(0) is None:
        return _make("cuda", 0)
    from .torch import auto_kinds, status

    for kind in auto_kinds():
        if status(kind, 0)[0] is None:
            return _make(kind, 0)
    return _make("cpu", 0)


def _torch(kind: str, index: int, fallback: bool) -> Backend:
    """torch (its CPU: needs torch installed, else DeviceError), torch:cuda:N or torch:mps (a GPU torch
    cannot use falls back to cpu with one warning line, or raises with fallback=False)."""
    from .torch import backend_name, status

    name = backend_name(kind, index)
    if name in _instances:
        return _instances[name]
    problem, count = status(kind, index)
    if count and index >= count:
        raise DeviceError(f"there is no {name}; torch sees {count} CUDA device{'s' if count != 1 else ''}: "
                          + ", ".join(f"torch:cuda:{i}" for i in range(count)))
    if problem is not None and kind == "torch":
        raise DeviceError(f"device 'torch' needs PyTorch: {problem}")
    if problem is not None:
        return _fall_back(name, problem, fallback)
    return _make(kind, index)


def registered() -> dict[str, Backend]:
    """{name: Backend} for the backends made (or registered) so far in this process; a copy."""
    return dict(_instances)


def register(backend: Backend) -> Backend:
    """Make get_backend(backend.name) return `backend` from now on (a device of your own, or a
    simulated one), in place of any backend of that name made before."""
    _instances[backend.name] = backend
    return backend


def forget(name: str) -> Backend | None:
    """Drop the backend called `name` (returned, or None if there was none): the next
    get_backend(name) makes a new one."""
    return _instances.pop(name, None)


def backend_of(array) -> Backend | None:
    """The backend (made so far in this process) whose device holds `array`, or None
    (a host object such as a list or a NumPy array no backend owns)."""
    for b in _instances.values():
        if b.is_array(array):
            return b
    return None


def available_backends() -> list[str]:
    """Backends usable on this machine, for tests and benchmarks."""
    names = ["cpu", "strict", "strict:1"]
    if cuda_problem(0) is None:
        names.append("cuda")
    return names

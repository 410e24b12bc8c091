"""get_backend: parse a device string, check the GPU by talking to the driver,
fall back to CPU with one warning line (or raise with fallback=False)."""
from __future__ import annotations

import re
import sys

from .base import Backend

VALID_FORMS = '"auto", "cpu", "cuda", "cuda:N" (N = GPU index) or "strict"'
CUDA_FIX = 'install CuPy for your CUDA version: pip install "tinyllm[cuda12]" (or "tinyllm[cuda13]")'

_instances: dict[str, Backend] = {}


class DeviceError(ValueError):
    """A device string that is malformed or names a GPU that is not usable."""


def _parse(spec: str) -> tuple[str, int]:
    if not isinstance(spec, str):
        raise DeviceError(f"device must be a string, got {type(spec).__name__}; use {VALID_FORMS}")
    s = spec.strip().lower()
    if s in ("auto", "cpu", "strict"):
        return s, 0
    m = re.fullmatch(r"(cuda|gpu)(?::(\d+))?", s)
    if m:
        return "cuda", int(m.group(2) or 0)
    raise DeviceError(f"unknown device {spec!r}; use {VALID_FORMS}")


def cuda_problem(index: int = 0) -> str | None:
    """Why CUDA device `index` cannot be used, or None if it can.

    Decided by talking to the driver: with CuPy installed and no driver,
    `import cupy` works and only the first runtime call fails.
    """
    try:
        import cupy
    except Exception:  # ImportError, or a broken CuPy install
        return "CuPy is not installed"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDARuntimeError: no driver / insufficient driver
        msg = str(e).split("\n")[0]
        if "driver" in msg.lower():
            return f"no usable NVIDIA driver ({msg})"
        return f"the CUDA runtime failed ({msg})"
    if count == 0:
        return "no CUDA device was found"
    if index >= count:
        return f"device index {index} is out of range ({count} CUDA device{'s' if count != 1 else ''} found)"
    try:  # a real allocation: the last thing that can fail
        with cupy.cuda.Device(index):
            cupy.zeros(1).sum()
    except Exception as e:
        return f"allocating on cuda:{index} failed ({str(e).splitlines()[0]})"
    return None


def _make(kind: str, index: int) -> Backend:
    key = kind if kind != "cuda" else f"cuda:{index}"
    if key not in _instances:
        if kind == "cpu":
            from .cpu import CPUBackend

            _instances[key] = CPUBackend()
        elif kind == "strict":
            from .strict import StrictBackend

            _instances[key] = StrictBackend()
        else:
            from .cuda import CUDABackend

            _instances[key] = CUDABackend(index)
    return _instances[key]


def get_backend(spec: "str | Backend" = "auto", fallback: bool = True) -> Backend:
    """The Backend for a device string.

    "auto": a usable GPU if there is one, else CPU, silently.
    "cuda" / "cuda:N": that GPU; if unusable, CPU with one warning line on
    stderr (fallback=True) or a DeviceError (fallback=False).
    """
    if isinstance(spec, Backend):
        return spec
    kind, index = _parse(spec)
    if kind == "auto":
        return _make("cuda", 0) if cuda_problem(0) is None else _make("cpu", 0)
    if kind == "cuda":
        problem = cuda_problem(index)
        if problem is not None:
            msg = f"cuda:{index} is not usable: {problem}; {CUDA_FIX}"
            if not fallback:
                raise DeviceError(msg)
            print(f"warning: {msg}. Falling back to cpu.", file=sys.stderr)
            return _make("cpu", 0)
    return _make(kind, index)


def available_backends() -> list[str]:
    """Backends usable on this machine, for tests and benchmarks."""
    names = ["cpu", "strict"]
    if cuda_problem(0) is None:
        names.append("cuda")
    return names

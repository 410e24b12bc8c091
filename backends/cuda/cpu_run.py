"""Run the GPU kernels' own CUDA C++ on the CPU: each family compiled by the host's C++ compiler with
kernels/cpu_shim.h (blocks one at a time, their threads as coroutines, so __syncthreads, __shared__ and
the shuffles behave), for tests and the simulated CuPy of the GPU check's dry run. Slow by design:
it shows what a kernel computes, not how fast."""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import pathlib
import shutil
import subprocess
import tempfile

import numpy as np

from . import kernels

_CTYPES = {"float": ctypes.c_float, "double": ctypes.c_double, "int": ctypes.c_int, "unsigned": ctypes.c_uint,
           "long long": ctypes.c_longlong, "unsigned long long": ctypes.c_ulonglong}


def compiler() -> "str | None":
    return shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")


def _trampolines(table: dict) -> str:
    """C++ that unpacks cuLaunchKernel-style parameters (void* per argument) into each entry's call."""
    out = []
    for name, types in table.items():
        args = ", ".join(f"*({t}*)p[{i}]" for i, t in enumerate(types))
        out.append(f'extern "C" void launch_{name}(void** p) {{ {name}({args}); }}')
    return "\n".join(out) + "\n"


def _cache_dir() -> pathlib.Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(root) / "tinyllm" / "cpu_run"


@functools.cache
def library(code: str) -> ctypes.CDLL:
    """CUDA C++ source text compiled for this CPU with the shim (cached on disk by its hash)."""
    cxx = compiler()
    if cxx is None:
        raise RuntimeError("running the CUDA kernels on the CPU needs a C++ compiler (g++)")
    text = (kernels.HERE / "cpu_shim.h").read_text() + "\n" + code + "\n" + _trampolines(kernels.parse_entries(code))
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    lib = _cache_dir() / f"k-{digest}.so"
    if not lib.exists():
        lib.parent.mkdir(parents=True, exist_ok=True)
        built = lib.with_suffix(f".{os.getpid()}.tmp")  # beside it: os.replace stays on one file system
        with tempfile.TemporaryDirectory() as tmp:
            src = pathlib.Path(tmp) / "k.cpp"
            src.write_text(text)
            r = subprocess.run([cxx, "-O2", "-std=c++17", "-shared", "-fPIC", "-w", "-o", str(built), str(src)],
                               capture_output=True, text=True)
        if r.returncode != 0:
            built.unlink(missing_ok=True)
            raise RuntimeError(f"a CUDA source does not compile as C++ with the CPU shim:\n{r.stderr[-2000:]}")
        os.replace(built, lib)  # whole or not at all, if two processes build it at once
    return ctypes.CDLL(str(lib))


def _pointer(a) -> int:
    if a is None:
        return 0
    arr = a.view(np.ndarray) if isinstance(a, np.ndarray) else a
    return arr.ctypes.data


class Kernel:
    """One entry point of a CUDA source, called as CuPy's RawKernel is: kernel(grid, block, args)."""

    def __init__(self, name: str, code: "str | None" = None):
        self.name = name
        self.code = code if code is not None else kernels.source(kernels.all_entries()[name])
        self.types = kernels.parse_entries(self.code)[name]

    def __call__(self, grid, block, args) -> None:
        if len(args) != len(self.types):
            raise TypeError(f"{self.name} takes {len(self.types)} arguments, got {len(args)}")
        lib = library(self.code)
        holders = [self._value(t, a) for t, a in zip(self.types, args)]
        params = (ctypes.c_void_p * len(holders))(*[ctypes.cast(ctypes.pointer(h), ctypes.c_void_p) for h in holders])
        grid = tuple(grid) if isinstance(grid, tuple) else (grid,)
        block = tuple(block) if isinstance(block, tuple) else (block,)
        grid, block = (grid + (1, 1))[:3], (block + (1, 1))[:3]
        fn = getattr(lib, f"launch_{self.name}")
        rc = lib.shim_launch(ctypes.cast(fn, ctypes.c_void_p), params, *[ctypes.c_uint(int(v)) for v in grid + block])
        if rc:
            raise ValueError(f"{self.name}: a block of {block} threads is more than 1024")

    def _value(self, ctype: str, a):
        if ctype.endswith("*"):
            if a is not None and not (isinstance(a, np.ndarray) and a.flags.c_contiguous):
                raise TypeError(f"{self.name}: pointer arguments must be C-contiguous arrays")
            return ctypes.c_void_p(_pointer(a))
        base = ctype.replace("const ", "")
        return _CTYPES[base](a.item() if isinstance(a, np.generic) else a)

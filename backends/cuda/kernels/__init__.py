"""The CUDA C++ sources of the GPU's fused kernels, one file a kernel family.

The same text is compiled three ways: by CuPy (NVRTC) on a GPU (backends/cuda/fused.py), by NVRTC
alone for sm_80 and sm_90 with no GPU or driver (`compile_cubin`, tests and the GPU check's dry run),
and as plain C++ with cpu_shim.h to run on a CPU (backends/cuda/cpu_run.py). Each entry point is an
`extern "C" __global__` function; `entries()` reads their parameter lists from the text.
"""
from __future__ import annotations

import functools
import pathlib
import re

HERE = pathlib.Path(__file__).resolve().parent
FAMILIES = ("philox", "gelu", "layer_norm", "cross_entropy", "attention", "adam", "segment")
ARCHS = ("sm_80", "sm_90")  # A100, H100/H200


@functools.cache
def source(family: str) -> str:
    """The family's source with its local includes inlined (NVRTC and CuPy then need no include path)."""
    text = (HERE / f"{family}.cu").read_text()
    return re.sub(r'#include "(\w+\.cuh)"', lambda m: (HERE / m.group(1)).read_text(), text)


_ENTRY = re.compile(r'extern "C" __global__ void (\w+)\(([^)]*)\)')


def parse_entries(code: str) -> dict:
    """{entry point: [parameter C types]} of a CUDA source text."""
    found = {}
    for name, params in _ENTRY.findall(code):
        found[name] = [" ".join(p.split()[:-1]).replace(" *", "*") for p in params.split(",") if p.strip()]
    return found


@functools.cache
def entries(family: str) -> dict:
    """{entry point: [parameter C types]} of one family."""
    return parse_entries(source(family))


def all_entries() -> dict:
    """{entry point: family} for every kernel in the tree."""
    return {name: fam for fam in FAMILIES for name in entries(fam)}


def compile_cubin(family: str, arch: str) -> bytes:
    """NVRTC's cubin of one family for `arch` (e.g. "sm_90"), from the cuda-bindings package: no GPU or
    driver needed. Raises RuntimeError with NVRTC's log if it does not compile."""
    from cuda.bindings import nvrtc

    src = source(family).encode()
    err, prog = nvrtc.nvrtcCreateProgram(src, f"{family}.cu".encode(), 0, [], [])
    _check(nvrtc, err, prog, family)
    opts = [f"-arch={arch}".encode(), b"-std=c++17"]  # IEEE math (no fast-math), as CuPy compiles by default
    (err,) = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
    _check(nvrtc, err, prog, family)
    err, size = nvrtc.nvrtcGetCUBINSize(prog)
    buf = b" " * size
    (err,) = nvrtc.nvrtcGetCUBIN(prog, buf)
    nvrtc.nvrtcDestroyProgram(prog)
    return buf


def _check(nvrtc, err, prog, family: str) -> None:
    if err == nvrtc.nvrtcResult.NVRTC_SUCCESS:
        return
    log = ""
    if prog is not None:
        _, n = nvrtc.nvrtcGetProgramLogSize(prog)
        text = b" " * n
        nvrtc.nvrtcGetProgramLog(prog, text)
        log = text.decode(errors="replace").strip()
    raise RuntimeError(f"NVRTC could not compile {family}.cu ({err.name}): {log}")

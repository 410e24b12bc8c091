"""Compile every CUDA kernel in the tree for the GPUs tinyllm targets, with NVRTC alone (no GPU or driver).

    python scripts/compile_kernels.py          # the GPU check runs it, and its dry run in CI

Each family of backends/cuda/kernels is compiled for every arch of kernels.ARCHS (sm_80: A100; sm_90:
H100/H200) by `compile_cubin` (cuda-bindings' NVRTC; the cuda-dev extra). K counts kernel entry points
(`__global__` functions, e.g. gelu_forward_f32 and gelu_forward_f64 are two), not families: an entry
counts when it is in the cubin of every arch. The tree's kernels are counted apart from the families'
list, from every .cu/.cuh file under backends/, so a kernel in a file no family names fails the check.
Prints `kernels compiled: K for sm_80, sm_90`; exit 1 if any does not compile or is missing.
"""
from __future__ import annotations

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_GLOBAL = re.compile(r"__global__\s+void\s+(\w+)\s*\(")


def kernels_in_tree() -> set:
    """Every __global__ function in the CUDA sources under backends/, by name."""
    found = set()
    for path in sorted((ROOT / "backends").rglob("*.cu*")):
        if path.suffix in (".cu", ".cuh"):
            found |= set(_GLOBAL.findall(path.read_text()))
    return found


def compile_all() -> tuple:
    """({entry point: [archs whose cubin holds it]}, [problems])."""
    from backends.cuda import kernels

    built, problems = {}, []
    for family in kernels.FAMILIES:
        for arch in kernels.ARCHS:
            try:
                cubin = kernels.compile_cubin(family, arch)
            except Exception as e:  # NVRTC missing, or a source that does not compile: named, then on
                problems.append(f"{family} for {arch}: {type(e).__name__}: {str(e).splitlines()[0][:300]}")
                continue
            for name in kernels.entries(family):
                if name.encode() in cubin:
                    built.setdefault(name, []).append(arch)
    return built, problems


def main() -> int:
    from backends.cuda import kernels

    built, problems = compile_all()
    done = sorted(n for n, archs in built.items() if len(archs) == len(kernels.ARCHS))
    missing = sorted(kernels_in_tree() - set(done))
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    if missing:
        print(f"error: not compiled for every arch: {', '.join(missing)}", file=sys.stderr)
    print(f"{len(kernels.FAMILIES)} families ({', '.join(kernels.FAMILIES)}); {len(kernels_in_tree())} kernels "
          f"in the tree")
    print(f"kernels compiled: {len(done)} for {', '.join(kernels.ARCHS)}")
    return 1 if problems or missing else 0


if __name__ == "__main__":
    sys.exit(main())

"""The environment variables tinyllm reads, written down once (docs/env.md is this table), and
the one rule for a flag: unset, empty, "0", "false", "no" or "off" (any case) is off; any other
value is on."""
from __future__ import annotations

import os
from dataclasses import dataclass

OFF = ("", "0", "false", "no", "off")


@dataclass(frozen=True)
class Variable:
    name: str
    default: str  # what holds while it is unset
    meaning: str


VARIABLES = (
    Variable("TINYLLM_NO_JIT", "off", "a flag: on keeps the CPU kernels on NumPy's passes instead of numba's "
             "compiled loops (the [fast] extra)"),
    Variable("TINYLLM_NO_MKL", "off", "a flag: on keeps the CPU's 2-D matmuls on NumPy's BLAS instead of MKL "
             "(the mkl wheel, Intel CPUs)"),
    Variable("TINYLLM_DIST", "auto", "auto: one process, or one rank of an MPI launch when mpiexec started it; "
             "mpi: always MPI; none: always one process"),
    Variable("TINYLLM_CUDA_AWARE_MPI", "MPI's own answer", "a flag: whether GPU buffers go to MPI as they are "
             "(on) or through the host (off); unset, MPI is asked"),
    Variable("TINYLLM_CUDA_SIM", "off", "N (or a flag): cuda / cuda:i are devices of a simulated CuPy with N "
             "GPUs (1 when just on), which runs the CUDA kernels' own source on the CPU and counts launches "
             "(backends/cuda/sim.py; the GPU check's dry run and tests)"),
    Variable("TINYLLM_NO_CUDA_KERNELS", "off", "a flag: on runs cuda devices on CuPy's array ops alone, "
             "without tinyllm's fused CUDA kernels (backends/cuda/kernels/)"),
    Variable("TINYLLM_TF32", "off", "a flag: on lets cuda's float32 matmuls use TF32 tensor cores (CUPY_TF32=1; "
             "faster on A100/H100, products rounded to 10 mantissa bits: ~1e-3 relative instead of ~1e-6); off "
             "keeps full float32 (CUPY_TF32=0; docs/devices.md, Precision)"),
    Variable("TINYLLM_CACHE_DIR", "$XDG_CACHE_HOME/tinyllm, else ~/.cache/tinyllm", "where a --data file and "
             "the named datasets are kept as token shards once tokenized (data/KEY/; tinyllm/data/cached.py); "
             "safe to delete"),
    Variable("TINYLLM_BACKENDS", "cpu,strict,strict:1,torch,cuda", "the test suite's devices, comma-separated "
             "(tests/conftest.py)"),
    Variable("OPENBLAS_THREAD_TIMEOUT", "4 (tinyllm sets it)", "OpenBLAS's: how long (2^N cycles) its workers "
             "spin after a call; tinyllm sets 4 before NumPy loads unless it is set (backends/cpu/blas_env.py)"),
    Variable("MKL_NUM_THREADS", "the cores", "MKL's pool size, applied by tinyllm (MKL on TBB does not read it); "
             "before OMP_NUM_THREADS"),
    Variable("OMP_NUM_THREADS", "the cores", "OpenBLAS's and MKL's pool size; the thread policy never uses more"),
)
TABLE = {v.name: v for v in VARIABLES}


def _known(name: str) -> Variable:
    if name not in TABLE:
        raise KeyError(f"{name} is not in backends/env.py's table: add it there (and to docs/env.md)")
    return TABLE[name]


def flag(name: str, unset=False):
    """Whether the flag `name` is on: `unset` while it is not set, else by the one rule above."""
    _known(name)
    value = os.environ.get(name)
    if value is None:
        return unset
    return value.strip().lower() not in OFF


def setting(name: str) -> str:
    """The value of `name`, or the table's default while it is unset."""
    return os.environ.get(name, _known(name).default)


def given(name: str) -> str | None:
    """The value of `name` as set, or None while it is unset or empty (for a default that is computed)."""
    return os.environ.get(_known(name).name) or None


def markdown_table() -> str:
    """The table as docs/env.md shows it (python -m backends.env prints it)."""
    rows = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    rows += [f"| `{v.name}` | {v.default} | {v.meaning} |" for v in VARIABLES]
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())

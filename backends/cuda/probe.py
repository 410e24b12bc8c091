"""Why a CUDA device cannot be used: diagnose() names the real cause (no CuPy,
no driver, a CUDA library CuPy cannot load, a failing test run); probe() runs
what training needs once: an allocation, a cuBLAS matmul and an NVRTC-compiled
elementwise kernel."""
from __future__ import annotations

import re

INSTALL = 'pip install "tinyllm[cuda12]" (or "tinyllm[cuda13]"), which brings CuPy and the CUDA libraries it loads'


def first_line(e: BaseException) -> str:
    """The first line of an error message (at most 160 characters), or its class name."""
    text = str(e).strip().splitlines()
    return text[0][:160] if text else type(e).__name__


def _lib_missing(name: str, e: BaseException) -> str:
    """'NVRTC (libnvrtc.so.12)': the library and the file the loader looked for."""
    files = list(dict.fromkeys(re.findall(r"lib\w+\.(?:so(?:\.\d+)*|dll)", str(e))))
    return f"{name} ({' or '.join(files) if files else first_line(e)})"


def _cuda_version(v: int) -> str:
    return f"{v // 1000}.{v % 1000 // 10}"


def missing_libraries() -> list:
    """The CUDA libraries training needs that CuPy cannot load (they come from a CUDA toolkit or
    from NVIDIA's wheels, which the tinyllm[cuda12] / [cuda13] extras install)."""
    missing = []
    try:
        from cupy_backends.cuda.libs import nvrtc

        nvrtc.getVersion()
    except Exception as e:  # DynamicLibNotFoundError (a RuntimeError), ImportError
        missing.append(_lib_missing("NVRTC", e))
    try:
        from cupy_backends.cuda.libs import cublas  # noqa: F401  (loads libcublas at import)
    except Exception as e:
        missing.append(_lib_missing("cuBLAS", e))
    return missing


def diagnose(cupy, index: int, run_probe: bool = True) -> tuple:
    """(problem or None, device count or None) for cuda:index, by talking to the driver;
    run_probe=False skips the test run on the device (counting GPUs must not open a context on one).

    With CuPy installed and no driver, `import cupy` works and only the first
    runtime call fails; a missing library fails only when first used (NVRTC at
    the first elementwise kernel, cuBLAS at the first matmul).
    """
    libs = [] if getattr(cupy, "simulated", False) else missing_libraries()
    lib_note = f"CuPy cannot load {' and '.join(libs)}; {INSTALL}" if libs else None
    try:
        driver = cupy.cuda.runtime.driverGetVersion()
    except Exception:
        driver = 0
    if driver == 0:
        # the driver comes first (the libraries' wheels are no use without it); a missing library is named after it
        then = (f" (CuPy will then also need {' and '.join(libs)}: a CUDA toolkit, or tinyllm's cuda12 / cuda13 "
                f"extra, brings them)") if libs else ""
        return ("no NVIDIA driver was found (CuPy is installed, but this machine has no usable GPU driver); "
                f"install the NVIDIA driver{then}"), None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:
        msg = first_line(e)
        if "InsufficientDriver" in msg:
            try:
                runtime = _cuda_version(cupy.cuda.runtime.runtimeGetVersion())
            except Exception:
                runtime = "?"
            return (f"the NVIDIA driver supports CUDA {_cuda_version(driver)}, older than the CUDA {runtime} "
                    f"this CuPy was built for; update the driver or install the CuPy for your CUDA"), None
        return f"the CUDA runtime failed ({msg})", None
    if count == 0:
        return "no CUDA device was found", 0
    if index >= count:
        return f"there is no cuda:{index}", count
    if lib_note:
        return lib_note, count
    if not run_probe:
        return None, count
    try:
        probe(cupy, index)
    except Exception as e:
        return f"a test run on cuda:{index} failed ({type(e).__name__}: {first_line(e)})", count
    return None, count


_PROBE = 'extern "C" __global__ void tinyllm_probe(const float* x, float* y, int n) ' \
         '{ int i = threadIdx.x; if (i < n) y[i] = 2.0f * x[i] + 1.0f; }'


def probe(cupy, index: int) -> None:
    """Make cuda:index current (once, for good: a `with Device(index)` would reset the thread's device on
    leaving, to GPU 0 on a fresh thread, opening a context there), then run what training needs once:
    allocate, multiply through cuBLAS, launch an NVRTC-compiled kernel."""
    import numpy as np

    cupy.cuda.Device(index).use()
    a = cupy.asarray(np.arange(6, dtype=np.float32).reshape(2, 3))  # an allocation and a copy
    m = a @ a.T  # cuBLAS sgemm: [[5, 14], [14, 50]]
    y = cupy.asarray(np.zeros((2, 2), dtype=np.float32))
    cupy.RawModule(code=_PROBE).get_function("tinyllm_probe")((1,), (32,), (m, y, np.int32(4)))  # NVRTC
    got = cupy.asnumpy(y).tolist()  # the copy waits for the device
    if got != [[11.0, 29.0], [29.0, 101.0]]:
        raise RuntimeError(f"wrong result {got}")

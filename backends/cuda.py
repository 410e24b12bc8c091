"""CuPy on an NVIDIA GPU. Imported only when a CUDA device is asked for.

CuPy allocates and launches kernels on the thread's *current* device, and
array-api-compat ignores `device=` for CuPy, so a backend for cuda:1 that did
nothing would put its arrays on cuda:0. CUDABackend therefore enters its own
device around every call: its `xp` is the array-api-compat namespace with each
function wrapped in `with device:` (DeviceNamespace), from_host / to_host /
synchronize enter it, and activate() is that context for code that runs
operators (`a + b` launches a kernel too): tinyllm's ops, backward, optimizer,
sampling and training loop enter it. cuda:0 and cuda:1 in one process never
cross.

diagnose() says why a device cannot be used, naming the real cause (no CuPy,
no driver, a CUDA library CuPy cannot load, a failing test run), and probe()
runs what training needs once: an allocation, a cuBLAS matmul and an
NVRTC-compiled elementwise kernel.
"""
from __future__ import annotations

import functools
import re
import types

from .base import Backend, sorted_segment_add

INSTALL = 'pip install "tinyllm[cuda12]" (or "tinyllm[cuda13]"), which brings CuPy and the CUDA libraries it loads'


class DeviceNamespace:
    """An array namespace whose every function runs inside `with ctx:` (dtypes and constants pass through)."""

    def __init__(self, xp, ctx):
        self._xp = xp
        self._ctx = ctx

    def __getattr__(self, name):
        v = getattr(self._xp, name)
        if isinstance(v, types.ModuleType):  # xp.linalg, xp.fft
            v = DeviceNamespace(v, self._ctx)
        elif callable(v) and not isinstance(v, type):  # functions; dtypes are classes
            v = _entering(v, self._ctx)
        setattr(self, name, v)  # resolved once
        return v


def _entering(fn, ctx):
    @functools.wraps(fn)
    def on_device(*args, **kwargs):
        with ctx:
            return fn(*args, **kwargs)

    return on_device


class CUDABackend(Backend):
    kind = "cuda"
    has_context = True

    def __init__(self, index: int = 0, cupy=None, xp=None):
        """cupy / xp: the modules to use (tests pass a simulated pair; by default the real ones)."""
        if cupy is None:
            import cupy
        if xp is None:
            import array_api_compat.cupy as xp
        self._cp = cupy
        dev = cupy.cuda.Device(index)
        super().__init__(f"cuda:{index}", DeviceNamespace(xp, dev), device=dev)

    def activate(self):
        return self.device

    def _from_numpy(self, a):
        with self.device:
            return self._cp.asarray(a)

    def _to_numpy(self, x):
        with self.device:
            return self._cp.asnumpy(x)

    def _synchronize(self) -> None:
        with self.device:
            self.device.synchronize()

    def is_array(self, x) -> bool:
        return isinstance(x, self._cp.ndarray) and x.device.id == self.device.id

    def scatter_add(self, target, indices, values):
        """Deterministic (cupyx.scatter_add adds floats with atomics: the last bits vary run to run)."""
        with self.device:
            return sorted_segment_add(self.xp, target, indices, values)


# -- why a CUDA device cannot be used --------------------------------------------------------------

def _line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:160] if text else type(e).__name__


def _lib_missing(name: str, e: BaseException) -> str:
    """'NVRTC (libnvrtc.so.12)': the library and the file the loader looked for."""
    files = list(dict.fromkeys(re.findall(r"lib\w+\.(?:so(?:\.\d+)*|dll)", str(e))))
    return f"{name} ({' or '.join(files) if files else _line(e)})"


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
    libs = missing_libraries()
    lib_note = f"CuPy cannot load {' and '.join(libs)}; {INSTALL}" if libs else None
    try:
        driver = cupy.cuda.runtime.driverGetVersion()
    except Exception:
        driver = 0
    if driver == 0:
        problem = "no NVIDIA driver was found (CuPy is installed, but this machine has no usable GPU driver)"
        return (problem + (f"; also {lib_note}" if lib_note else "; install the NVIDIA driver")), None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:
        msg = _line(e)
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
        return f"a test run on cuda:{index} failed ({type(e).__name__}: {_line(e)})", count
    return None, count


def probe(cupy, index: int) -> None:
    """Run what training needs once: allocate, multiply through cuBLAS, launch an NVRTC-compiled kernel."""
    with cupy.cuda.Device(index):
        a = cupy.arange(6, dtype=cupy.float32).reshape(2, 3)  # allocation + a built-in kernel
        m = a @ a.T  # cuBLAS sgemm: [[5, 14], [14, 50]]
        k = cupy.ElementwiseKernel("float32 x", "float32 y", "y = 2.0f * x + 1.0f", "tinyllm_probe")
        got = cupy.asnumpy(k(m)).tolist()  # compiled by NVRTC; the copy waits for the device
    if got != [[11.0, 29.0], [29.0, 101.0]]:
        raise RuntimeError(f"wrong result {got}")

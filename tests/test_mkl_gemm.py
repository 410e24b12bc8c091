"""backends/cpu/mkl.py: the CPU's 2-D matmuls through MKL when it is installed.

Whatever the layout (C order, transposed, a slice of columns, neither), the
product equals NumPy's; what MKL cannot read in place goes to NumPy. Its bits
do not depend on the arrays' alignment or on the thread count (MKL's strict
reproducibility mode: without it they did, here), the thread policy sizes
MKL's pool with OpenBLAS's, and TINYLLM_NO_MKL=1 turns it off. The test extra
installs the `mkl` wheel on x86-64 Linux, so CI runs the MKL rows.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from backends.cpu import mkl
from backends.cpu.kernels import NumpyFast
from backends.cpu.mkl import blas_controllers

needs_mkl = pytest.mark.skipif(not mkl.gemm_available(), reason=f"MKL is not used here: {mkl.why_not()}")


def _layouts(rng, dtype, m, k, n):
    """(name, a, b) with a @ b of shape (m, n), the operands laid out in every way the engine makes."""
    def c(r, s):
        return rng.standard_normal((r, s)).astype(dtype)

    wide = c(m, k + 7)
    return [
        ("C @ C", c(m, k), c(k, n)),
        ("C @ T", c(m, k), c(n, k).T),  # g @ W^T
        ("T @ C", c(k, m).T, c(k, n)),  # x^T @ g: a weight's gradient
        ("T @ T", c(k, m).T, c(n, k).T),
        ("column slice @ C", wide[:, 3:3 + k], c(k, n)),
        ("column slice^T @ C", c(k, m + 5)[:, 2:2 + m].T, c(k, n)),
        ("every other row @ C", c(2 * m, k)[::2], c(k, n)),  # neither layout: NumPy's
    ]


@pytest.fixture(params=["numba", "ctypes"])
def caller(request, monkeypatch):
    """MKL called from numba's compiled caller (backends/cpu/jit/gemm.py) or through ctypes."""
    if request.param == "numba" and (not mkl.gemm_available() or mkl._gemm.call is None):
        pytest.skip(f"no compiled caller: {mkl.why_not() or 'numba is not installed'}")
    if request.param == "ctypes" and mkl.gemm_available():
        monkeypatch.setattr(mkl._gemm, "call", None)
    return request.param


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(5, 3, 4), (64, 128, 96), (1, 7, 1), (300, 1, 20)])
def test_products_equal_numpys_in_every_layout(caller, dtype, shape):
    rng = np.random.default_rng(0)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    layouts = _layouts(rng, dtype, *shape)
    a, b = layouts[0][1].copy(), layouts[0][2].copy()
    a.flags.writeable = b.flags.writeable = False  # read-only operands (numba's caller takes writeable ones)
    for name, a, b in layouts + [("read-only C @ C", a, b)]:
        got = mkl.matmul2d(a, b)
        want = a.astype(np.float64) @ b.astype(np.float64)
        assert got.dtype == dtype and got.shape == want.shape, name
        assert got.flags.c_contiguous, name
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.sqrt(shape[1]), err_msg=name)


def test_what_mkl_does_not_take_goes_to_numpy():
    rng = np.random.default_rng(1)
    a32, b32 = rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal((3, 2)).astype(np.float32)
    cases = [
        (a32, b32.astype(np.float64)),  # mixed dtypes: NumPy's promotion
        (a32[:, :0], b32[:0]),  # K = 0: zeros
        (a32[:0], b32),  # no rows
        (a32.astype(np.int64), b32.astype(np.int64)),  # not a float
    ]
    for a, b in cases:
        got, want = mkl.matmul2d(a, b), a @ b
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError):  # mismatched inner sizes are NumPy's error, not a crash
        mkl.matmul2d(a32, a32)


def _placed(a, offset):
    """A copy of a at `offset` elements into a fresh buffer, in a's layout (C or transposed)."""
    flat = np.empty(a.size + 32, a.dtype)[offset:offset + a.size]
    if a.flags.c_contiguous:
        flat[...] = a.ravel()
        return flat.reshape(a.shape)
    flat[...] = a.T.ravel()
    return flat.reshape(a.shape[::-1]).T


@needs_mkl
def test_the_compiled_caller_gives_the_bits_ctypes_does(monkeypatch):
    if mkl._gemm.call is None:
        pytest.skip("numba is not installed: no compiled caller")
    rng = np.random.default_rng(3)
    for name, a, b in _layouts(rng, np.float32, 96, 128, 80):
        compiled = mkl.matmul2d(a, b)
        with monkeypatch.context() as m:
            m.setattr(mkl._gemm, "call", None)
            assert np.array_equal(mkl.matmul2d(a, b), compiled), name


@needs_mkl
def test_bits_do_not_depend_on_alignment_or_threads():
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(2)
    n = 6144  # the T=512 bench's rows: MKL's default mode gave different bits here for 18 of 108 products
    x = rng.standard_normal((n, 128)).astype(np.float32)
    g = rng.standard_normal((n, 384)).astype(np.float32)
    w = rng.standard_normal((384, 128)).astype(np.float32)
    for a, b in ((x.T, g), (g, w), (g, w.T.copy().T)):
        want = mkl.matmul2d(a, b)
        for threads in (1, 2):
            with threadpool_limits(threads, user_api="blas"):
                for offset in (1, 3, 8, 13):
                    got = mkl.matmul2d(_placed(a, offset), _placed(b, (offset * 5) % 16))
                    assert np.array_equal(got, want), (a.shape, b.shape, threads, offset)


@needs_mkl
def test_the_thread_policy_sizes_mkls_pool():
    fast = NumpyFast()
    assert any(c.internal_api == "mkl" for c in fast.threads._blas), "the policy should see MKL's pool"
    pools = [c for c in blas_controllers() if c.internal_api == "mkl"]
    try:
        for n in (2, 1):
            fast.threads.pin(n)
            assert [c.num_threads for c in pools] == [n] * len(pools)
    finally:
        fast.threads.pin(1)
        fast.threads.pin(None)


def test_no_mkl_turns_it_off():
    code = "from backends.cpu import mkl; print(mkl.gemm_available())"
    env = dict(os.environ, TINYLLM_NO_MKL="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


GOMP_FIRST = """
import ctypes, ctypes.util
gomp = ctypes.util.find_library("gomp")
if gomp:  # GNU OpenMP in the global namespace first, as `import torch` puts it
    ctypes.CDLL(gomp, mode=ctypes.RTLD_GLOBAL)
import numpy as np
from threadpoolctl import threadpool_limits
from backends.cpu import mkl
assert mkl.gemm_available()
rng = np.random.default_rng(0)
x = rng.standard_normal((6144, 128)).astype(np.float32)
g = rng.standard_normal((6144, 384)).astype(np.float32)
with threadpool_limits(2, user_api="blas"):
    err = np.abs(mkl.matmul2d(x.T, g) - x.T.astype(np.float64) @ g).max()
print(bool(gomp), err)
"""


@needs_mkl
def test_right_on_two_threads_after_gnu_openmp_was_loaded():
    """MKL's Intel OpenMP layer gave wrong products on 2 threads once PyTorch (GNU OpenMP) was
    imported first (max error 271 instead of 1e-4): its omp_* calls bound to GNU's. TBB does not."""
    out = subprocess.run([sys.executable, "-c", GOMP_FIRST], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    _, err = out.stdout.split()
    assert float(err) < 1e-2, out.stdout


@needs_mkl
@pytest.mark.parametrize("var", ["MKL_NUM_THREADS", "OMP_NUM_THREADS"])
def test_thread_variables_bound_mkls_pool_and_the_policy(var):
    """MKL on TBB reads neither variable itself: mkl applies them, and the policy never
    uses more threads than the smallest pool."""
    code = ("from backends.cpu.kernels import NumpyFast\n"
            "from backends.cpu.mkl import blas_controllers\n"
            "f = NumpyFast()\n"
            "print(f.threads.max_threads, [c.num_threads for c in blas_controllers() if c.internal_api == 'mkl'])")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    env[var] = "1"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split(maxsplit=1) == ["1", "[1]\n"], out.stdout


REFUSED_MKL = """
import ctypes
from threadpoolctl import threadpool_info
from backends.cpu import mkl
from backends.cpu.kernels import NumpyFast
ctypes.CDLL(mkl._library())  # MKL in the process, as when its reproducible mode refused the CPU
assert any(b["internal_api"] == "mkl" for b in threadpool_info()), "threadpoolctl should see the loaded MKL"
policy = NumpyFast().threads
print(mkl.gemm_available(), sorted(c.internal_api for c in policy._blas), mkl.why_not())
"""


def test_an_mkl_loaded_but_not_used_is_not_the_policys_pool():
    """An MKL that tinyllm loaded and then refused (on an AMD EPYC its strict reproducible mode fails)
    runs no matmul: the policy neither sizes its pool nor counts it, so its helpers' parts are
    judged by the BLAS that does the work. Shown here by loading MKL with TINYLLM_NO_MKL set."""
    if mkl._library() is None:
        pytest.skip("the mkl wheel is not installed")
    env = dict(os.environ, TINYLLM_NO_MKL="1")
    out = subprocess.run([sys.executable, "-c", REFUSED_MKL], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split(" ", 2)[:2] == ["False", "['openblas']"], out.stdout
    assert "TINYLLM_NO_MKL" in out.stdout


def test_mkl_is_used_or_says_why_not():
    """The 2-D matmuls go to MKL only where its strict reproducible mode holds; elsewhere a reason."""
    assert mkl.gemm_available() == (mkl.why_not() is None)
    if not mkl.gemm_available():
        assert mkl.why_not()

"""Device selection: auto, explicit cuda with fallback, bad strings, driverless CuPy."""
import subprocess
import sys
import types

import pytest

import backends
from backends import DeviceError, get_backend
from backends import select


def test_cpu_and_strict():
    assert get_backend("cpu").name == "cpu"
    assert get_backend("strict").name == "strict"
    assert get_backend("CPU").name == "cpu"


def test_unknown_device_lists_valid_forms():
    with pytest.raises(DeviceError) as e:
        get_backend("tpu")
    assert "cuda:N" in str(e.value) and "auto" in str(e.value)
    with pytest.raises(DeviceError):
        get_backend("cuda:x")


@pytest.fixture
def fake_cupy(monkeypatch):
    """Install a fake `cupy` module; the test sets how its driver calls behave."""
    mod = types.ModuleType("cupy")
    mod.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace())
    monkeypatch.setitem(sys.modules, "cupy", mod)
    return mod


def test_driverless_cupy_is_detected(fake_cupy):
    def no_driver():
        raise RuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient for CUDA runtime version")

    fake_cupy.cuda.runtime.getDeviceCount = no_driver
    assert "driver" in select.cuda_problem(0)


def test_no_device_and_index_out_of_range(fake_cupy):
    fake_cupy.cuda.runtime.getDeviceCount = lambda: 0
    assert select.cuda_problem(0) == "no CUDA device was found"
    fake_cupy.cuda.runtime.getDeviceCount = lambda: 1
    assert "out of range" in select.cuda_problem(3)


def test_cupy_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import raises ImportError
    assert select.cuda_problem(0) == "CuPy is not installed"


def test_explicit_cuda_falls_back_with_one_warning(monkeypatch, capsys):
    monkeypatch.setattr(select, "cuda_problem", lambda i: "no usable NVIDIA driver (simulated)")
    b = get_backend("cuda")
    err = capsys.readouterr().err
    assert b.name == "cpu"
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and "no usable NVIDIA driver" in lines[0] and "pip install" in lines[0]


def test_explicit_cuda_without_fallback_raises(monkeypatch):
    monkeypatch.setattr(select, "cuda_problem", lambda i: "no CUDA device was found")
    with pytest.raises(DeviceError, match="no CUDA device"):
        get_backend("cuda:0", fallback=False)


def test_auto_is_silent(monkeypatch, capsys):
    monkeypatch.setattr(select, "cuda_problem", lambda i: "CuPy is not installed")
    assert get_backend("auto").name == "cpu"
    assert capsys.readouterr().err == ""


def test_tinyllm_device_in_a_fresh_process():
    """Done-when line of the engine issue, run as a user would."""
    if backends.cuda_problem(0) is None:
        pytest.skip("a GPU is usable here: no fallback to show")
    r = subprocess.run([sys.executable, "-c", "import tinyllm; print(tinyllm.device('cuda'))"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "cpu"
    assert len(r.stderr.strip().splitlines()) == 1 and "warning" in r.stderr
    r = subprocess.run([sys.executable, "-c", "import tinyllm; print(tinyllm.device('auto'))"],
                       capture_output=True, text=True)
    assert r.stdout.strip() == "cpu" and r.stderr == ""


def test_rng_same_numbers_on_every_backend():
    a = get_backend("cpu").rng(5).normal((3, 4))
    b = get_backend("strict").rng(5).normal((3, 4))
    assert (get_backend("cpu").to_host(a) == get_backend("strict").to_host(b)).all()


def test_rng_state_round_trip(backend):
    r = backend.rng(1)
    r.normal((2,))
    state = r.get_state()
    x = backend.to_host(r.integers(0, 100, (5,)))
    r.set_state(state)
    assert (backend.to_host(r.integers(0, 100, (5,))) == x).all()


def test_scatter_add_accumulates_duplicates(backend):
    xp = backend.xp
    idx = backend.from_host([0, 2, 2, 2], "int64")
    vals = backend.from_host([[1.0], [1.0], [2.0], [3.0]], "float32")
    out = backend.to_host(backend.scatter_add(xp.zeros((3, 1), dtype=xp.float32), idx, vals))
    assert out.ravel().tolist() == [1.0, 0.0, 6.0]

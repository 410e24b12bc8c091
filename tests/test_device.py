"""Device selection: auto, explicit cuda with fallback, bad strings, driverless CuPy."""
import subprocess
import sys
import types

import pytest

import backends
from backends import DeviceError, get_backend
from backends import select
from backends.cuda import CUDABackend, sim
from backends.cuda import probe as cuda_probe


def test_cpu_and_strict():
    assert get_backend("cpu").name == "cpu"
    assert get_backend("strict").name == "strict"
    assert get_backend("CPU").name == "cpu"
    assert get_backend("strict:0") is get_backend("strict")
    assert get_backend("strict:1").name == "strict:1" and get_backend("strict:2").name == "strict:2"
    assert str(get_backend("strict:1").device) == str(__import__("array_api_strict").Device("device1"))


def test_unknown_device_lists_valid_forms():
    with pytest.raises(DeviceError) as e:
        get_backend("tpu")
    assert "cuda:N" in str(e.value) and "auto" in str(e.value) and "strict:N" in str(e.value)
    for bad in ("cuda:x", "strict:", "cpu:1", "strict1"):
        with pytest.raises(DeviceError, match="unknown device"):
            get_backend(bad)


def test_a_strict_device_that_does_not_exist_names_those_that_do():
    with pytest.raises(DeviceError) as e:
        get_backend("strict:3")
    assert str(e.value) == "there is no strict:3; array-api-strict has strict (= strict:0), strict:1 and strict:2"


@pytest.fixture
def real_cupy_path(monkeypatch):
    """The status comes from `cupy` as on a GPU box, not from the simulated CuPy (TINYLLM_CUDA_SIM: the GPU
    check's dry run); the backend's namespace module is imported first with the real CuPy, as it is there."""
    monkeypatch.delenv("TINYLLM_CUDA_SIM", raising=False)
    try:
        import array_api_compat.cupy  # noqa: F401
    except ImportError:
        pass


@pytest.fixture
def fake_cupy(monkeypatch, isolated_backends, real_cupy_path):
    """Install a fake `cupy` module (driver present, libraries found); the test sets how its driver calls behave."""
    mod = types.ModuleType("cupy")
    mod.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(driverGetVersion=lambda: 12040))
    monkeypatch.setitem(sys.modules, "cupy", mod)
    monkeypatch.setattr(cuda_probe, "missing_libraries", lambda: [])
    return mod


def test_driverless_cupy_is_detected(fake_cupy):
    fake_cupy.cuda.runtime.driverGetVersion = lambda: 0
    assert "no NVIDIA driver" in select.cuda_problem(0)


def test_a_driver_older_than_cupys_cuda_is_named(fake_cupy):
    def old():
        raise RuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient for CUDA runtime version")

    fake_cupy.cuda.runtime.driverGetVersion = lambda: 11040
    fake_cupy.cuda.runtime.runtimeGetVersion = lambda: 12090
    fake_cupy.cuda.runtime.getDeviceCount = old
    assert "supports CUDA 11.4, older than the CUDA 12.9" in select.cuda_problem(0)


def test_missing_cuda_libraries_are_named(fake_cupy, monkeypatch):
    fake_cupy.cuda.runtime.getDeviceCount = lambda: 1
    monkeypatch.setattr(cuda_probe, "missing_libraries", lambda: ["NVRTC (libnvrtc.so.12)"])
    problem = select.cuda_problem(0)
    assert "NVRTC (libnvrtc.so.12)" in problem and "tinyllm[cuda12]" in problem


def test_no_device_and_index_out_of_range(fake_cupy, capsys):
    fake_cupy.cuda.runtime.getDeviceCount = lambda: 0
    assert select.cuda_problem(0) == "no CUDA device was found"
    fake_cupy.cuda.runtime.getDeviceCount = lambda: 2
    for fallback in (True, False):  # bad input, not a missing GPU: no fallback
        with pytest.raises(DeviceError) as e:
            get_backend("cuda:3", fallback=fallback)
        assert str(e.value) == "there is no cuda:3; this machine has 2 CUDA devices: cuda:0, cuda:1"
    assert capsys.readouterr().err == ""


def test_cupy_not_installed(monkeypatch, real_cupy_path):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import raises ImportError
    assert select.cuda_problem(0).startswith("CuPy is not installed; pip install")


@pytest.fixture(params=["fresh process", "cuda:0 made before"])
def unmade_cuda(request, isolated_backends):
    """get_backend("cuda") as in a process that has not made cuda:0, so the status a test sets is the one
    consulted. On a GPU the real cuda:0 is made early (test_data.py) and would be handed out from the
    registry instead; the second case makes one first (on the simulated CuPy) to show it cannot fool the test."""
    if request.param != "fresh process":
        select.register(CUDABackend(0, cupy=sim.cupy, xp=sim.namespace))
    for name in select.registered():
        if name.startswith("cuda"):
            select.forget(name)


def test_explicit_cuda_falls_back_with_one_warning(monkeypatch, capsys, unmade_cuda):
    monkeypatch.setattr(select, "_cuda_status", lambda i: ("no NVIDIA driver was found (simulated)", None))
    b = get_backend("cuda")
    err = capsys.readouterr().err
    assert b.name == "cpu"
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and "no NVIDIA driver was found (simulated)" in lines[0] and "Falling back" in lines[0]


def test_explicit_cuda_without_fallback_raises(monkeypatch, unmade_cuda):
    monkeypatch.setattr(select, "_cuda_status", lambda i: ("no CUDA device was found", 0))
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
    out = backend.to_host(backend.scatter_add(xp.zeros((3, 1), dtype=xp.float32, device=backend.device), idx, vals))
    assert out.ravel().tolist() == [1.0, 0.0, 6.0]


def test_the_one_table_of_device_spellings_is_what_the_parser_and_the_helps_read(monkeypatch, capsys):
    """backends/devices.py's FORMS: every spelling parses, nothing else does, and tinyllm.device, the
    CLI's --device and the tutorials' --device show the table."""
    import pathlib

    from backends import devices

    got = {form: devices.parse(form.replace("N", "1")) for form, _ in devices.FORMS}
    assert got == {"auto": ("auto", 0), "cpu": ("cpu", 0), "cuda": ("cuda", 0), "cuda:N": ("cuda", 1),
                   "strict": ("strict", 0), "strict:N": ("strict", 1), "torch": ("torch", 0),
                   "torch:cpu": ("torch", 0), "torch:cuda": ("torch:cuda", 0), "torch:cuda:N": ("torch:cuda", 1),
                   "torch:mps": ("torch:mps", 0)}
    assert devices.parse(" GPU:2 ") == ("cuda", 2) and devices.parse("Strict") == ("strict", 0)
    assert devices.parse("Torch:CUDA:3") == ("torch:cuda", 3)
    for bad in ("cpu:1", "auto:0", "tpu", "strict:", "cuda:-1", "", "torch:1", "torch:cpu:0", "torch:mps:1",
                "torch:gpu", "torch:", "cuda:cuda"):
        assert devices.parse(bad) is None, bad
    with pytest.raises(DeviceError) as e:
        get_backend("tpu")
    assert devices.names(quote='"') in str(e.value)
    import tinyllm
    from tinyllm.cli import main

    assert devices.names(quote='"') in tinyllm.device.__doc__
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert devices.names() in " ".join(capsys.readouterr().out.split())
    monkeypatch.syspath_prepend(str(pathlib.Path(__file__).resolve().parents[1] / "scripts" / "tutorials"))
    import _common

    help_text = " ".join(_common.make_parser("x").format_help().split())
    assert all(f"{form}: {meaning}" in help_text for form, meaning in devices.FORMS)

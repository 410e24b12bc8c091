"""Against the real CuPy the cuda-dev extra installs (cupy-cuda12x; the README's test command has it): on a machine without a GPU driver
(CI, these machines) every path that asks for CUDA falls back to the CPU with one line naming the real
cause, and everything of CuPy the backend uses exists in the installed version."""
import ast
import os
import pathlib
import subprocess
import sys

import pytest

cupy = pytest.importorskip("cupy", reason="CuPy is not installed: pip install -e \".[cuda-dev]\" (the README's test command)")
from backends import DeviceError, cuda_problem, get_backend

ROOT = pathlib.Path(__file__).resolve().parents[1]
NO_GPU = cuda_problem(0) is not None


def _libraries_load() -> dict:
    found = {}
    try:
        from cupy_backends.cuda.libs import nvrtc

        nvrtc.getVersion()
        found["NVRTC"] = True
    except Exception:
        found["NVRTC"] = False
    try:
        from cupy_backends.cuda.libs import cublas  # noqa: F401

        found["cuBLAS"] = True
    except Exception:
        found["cuBLAS"] = False
    return found


def _expected_causes() -> list:
    """What is really missing here, found independently of the backend's own diagnosis."""
    causes = []
    try:
        driver = cupy.cuda.runtime.driverGetVersion()
    except Exception:
        driver = 0
    if driver == 0:
        causes.append("no NVIDIA driver")
    causes += [name for name, ok in _libraries_load().items() if not ok]
    return causes


def run(code: str):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)


@pytest.mark.skipif(not NO_GPU, reason="a GPU is usable here: there is no fallback to show")
def test_device_cuda_warns_once_naming_the_real_cause():
    causes = _expected_causes()
    assert causes, "no GPU is usable here, yet nothing is missing"
    r = run("import tinyllm; print(tinyllm.device('cuda'))")
    assert r.returncode == 0 and r.stdout.strip() == "cpu"
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: cuda:0 is not usable: "), r.stderr
    for cause in causes:
        assert cause in lines[0]
    assert "CuPy is not installed" not in lines[0]
    r = run("import tinyllm; print(tinyllm.device('auto'))")
    assert r.stdout.strip() == "cpu" and r.stderr == ""


@pytest.mark.skipif(not NO_GPU, reason="a GPU is usable here: there is no fallback to show")
def test_fallback_false_raises():
    with pytest.raises(DeviceError, match="cuda:0 is not usable: "):
        get_backend("cuda", fallback=False)


@pytest.mark.skipif(not NO_GPU, reason="a GPU is usable here: there is no fallback to show")
def test_train_with_device_cuda_trains_on_cpu_with_that_warning(tmp_path):
    r = subprocess.run([sys.executable, "-m", "tinyllm", "train", "--device", "cuda", "--steps", "3",
                        "--eval-interval", "3", "--eval-iters", "1", "--n-layer", "1", "--n-embd", "16",
                        "--n-head", "2", "--block-size", "8", "--batch-size", "4", "--samples", "0",
                        "--out", str(tmp_path / "run")], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=300)
    assert r.returncode == 0, r.stderr
    warnings = [l for l in r.stderr.splitlines() if l.startswith("warning:")]
    assert len(warnings) == 1 and "Falling back to cpu" in warnings[0]
    assert all(cause in warnings[0] for cause in _expected_causes())
    assert r.stdout.startswith("device cpu (NumPy backend") and "step 3/3" in r.stdout


def _cupy_attributes(path: pathlib.Path) -> set:
    """Every dotted attribute chain the file takes from cupy (`cupy.x.y`, `self._cp.x`, `cupy_backends...`)."""
    chains = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute):
            parts, n = [], node
            while isinstance(n, ast.Attribute):
                parts.append(n.attr)
                n = n.value
            parts.reverse()
            if isinstance(n, ast.Name) and n.id == "cupy":
                chains.add(".".join(parts))
            elif isinstance(n, ast.Name) and n.id == "self" and parts[0] == "_cp" and len(parts) > 1:
                chains.add(".".join(parts[1:]))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("cupy", "cupy_backends"):
            chains.update(f"@{node.module}.{a.name}" for a in node.names)
    return chains


def test_every_cupy_attribute_the_backend_uses_exists():
    import importlib

    used = set()
    for f in [ROOT / "backends" / "select.py", *sorted((ROOT / "backends" / "cuda").rglob("*.py"))]:
        used |= _cupy_attributes(f)
    assert {"cuda.Device", "asarray", "asnumpy", "ndarray", "RawModule", "cuda.runtime.driverGetVersion",
            "cuda.runtime.getDeviceCount", "@cupy_backends.cuda.libs.nvrtc", "@cupy_backends.cuda.libs.cublas"} <= used
    for chain in sorted(used):
        if chain.startswith("@"):  # a module: its file ships with CuPy even where its library is missing
            mod, name = chain[1:].rsplit(".", 1)
            assert importlib.util.find_spec(f"{mod}.{name}") is not None, chain
            continue
        obj = cupy
        for part in chain.split("."):
            obj = getattr(obj, part)  # AttributeError names what this CuPy lacks
    import array_api_compat.cupy as xp  # the namespace the backend wraps

    for name in ("zeros", "arange", "take", "argsort", "cumulative_sum", "searchsorted", "vecdot", "minimum"):
        assert callable(getattr(xp, name)), name


@pytest.mark.skipif(not NO_GPU, reason="a GPU is usable here: the check would run in full")
def test_gpu_check_stops_at_the_first_failure(tmp_path):
    out = tmp_path / "out"
    r = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh")], capture_output=True, text=True,
                       cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(ROOT), OUT=str(out), GPU_CHECK_ENV="current",
                                              PYTHON=sys.executable),
                       timeout=120)
    assert r.returncode == 1
    summary = (out / "summary.txt").read_text().splitlines()
    assert summary[-1].startswith("FAILED: gpu: the GPU is not usable") and "== 2." not in "\n".join(summary)
    assert len(list(out.iterdir())) <= 8
    assert (ROOT / "data" / "tinyshakespeare.txt").stat().st_size == 1115394  # the recipe's data is in the tree
    assert "../shared" not in (ROOT / "scripts" / "gpu_check.sh").read_text()

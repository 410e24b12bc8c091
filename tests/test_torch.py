"""The torch wing (backends/torch/): its spellings, the fallback when torch reports a device unusable,
MPS's missing float64 (simulated: torch's CPU build can make an "mps" device object, not run on it),
tinyllm's own autograd on tensors torch never records, widened token streams, and checkpoints that
are the cpu's files. The backend-parametrized suite runs on torch too (tests/conftest.py)."""
import ast
import glob
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed; pip install \"tinyllm[torch]\"")

import tinyllm  # noqa: E402
from backends import DeviceError, get_backend, select  # noqa: E402
from backends import torch as torch_wing  # noqa: E402
from backends.base import sorted_segment_add  # noqa: E402
from backends.torch import probe  # noqa: E402
from tinyllm import Trainer, TrainConfig  # noqa: E402
from tinyllm.cli import main  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = dict(n_layer=1, n_head=2, n_embd=16, block_size=8, batch_size=4, eval_iters=2, samples=0)
ONLY_CPU = pytest.mark.skipif(torch.cuda.is_available(), reason="torch can use a GPU here: no fallback to show")


def test_the_spellings_name_one_backend_each(isolated_backends):
    b = get_backend("torch")
    assert get_backend("torch:cpu") is b and get_backend(" Torch ") is b
    assert (b.name, b.kind, b.device, b.word_dtype) == ("torch", "torch", torch.device("cpu"), "int64")
    assert b.xp.__name__ == "array_api_compat.torch"


@ONLY_CPU
@pytest.mark.parametrize("spec, name", [("torch:cuda", "torch:cuda:0"), ("torch:cuda:1", "torch:cuda:1"),
                                        ("torch:mps", "torch:mps")])
def test_a_gpu_torch_cannot_use_falls_back_with_one_warning(spec, name, capsys, isolated_backends):
    assert get_backend(spec).name == "cpu"
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and err.startswith(f"warning: {name} is not usable: ")
    assert "Falling back to cpu" in err
    with pytest.raises(DeviceError, match=f"^{name} is not usable: "):
        get_backend(spec, fallback=False)


@pytest.fixture
def torch_sees_two_gpus(monkeypatch, isolated_backends):
    """torch as a CUDA build that sees two GPUs (which the CPU build cannot run on: the probe fails)."""
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def test_a_torch_gpu_past_the_count_is_refused_naming_those_there_are(torch_sees_two_gpus, capsys):
    for fallback in (True, False):  # bad input, not a missing GPU: no fallback
        with pytest.raises(DeviceError) as e:
            get_backend("torch:cuda:2", fallback=fallback)
        assert str(e.value) == "there is no torch:cuda:2; torch sees 2 CUDA devices: torch:cuda:0, torch:cuda:1"
    assert capsys.readouterr().err == ""


@ONLY_CPU
def test_a_failing_test_run_on_a_torch_gpu_is_the_cause_named(torch_sees_two_gpus, capsys):
    assert get_backend("torch:cuda:1").name == "cpu"
    err = capsys.readouterr().err
    assert "torch:cuda:1 is not usable: a test run on torch:cuda:1 failed (" in err and len(err.splitlines()) == 1


def test_without_torch_its_cpu_is_refused_and_its_gpus_fall_back(monkeypatch, capsys, isolated_backends):
    select.forget("torch")
    monkeypatch.setitem(sys.modules, "torch", None)  # import raises ImportError
    with pytest.raises(DeviceError) as e:
        get_backend("torch")
    assert str(e.value) == "device 'torch' needs PyTorch: torch is not installed; pip install \"tinyllm[torch]\""
    assert get_backend("torch:cuda").name == "cpu"
    assert "torch is not installed" in capsys.readouterr().err


def test_train_without_torch_exits_2_in_one_line(tmp_path):
    code = ("import sys; sys.modules['torch'] = None; from tinyllm.cli import main; "
            "sys.exit(main(['train', '--device', 'torch', '--steps', '2', '--out', 'o']))")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and 'pip install "tinyllm[torch]"' in r.stderr
    assert not (tmp_path / "o").exists()


@pytest.fixture
def mps(monkeypatch, isolated_backends):
    """torch reporting an MPS device. The CPU build makes the device object but cannot run on it, so the
    probe's test run is taken as passed; what is checked is what happens before anything runs there."""
    monkeypatch.setattr(torch.backends.mps, "is_built", lambda: True)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.setattr(probe, "probe", lambda torch, name: None)
    return get_backend("torch:mps", fallback=False)


def test_float64_on_mps_is_refused_in_one_line(mps, capsys):
    assert (mps.name, mps.device.type) == ("torch:mps", "mps")
    assert mps.dtype("float32") == torch.float32
    for make in (lambda: mps.dtype("float64"), lambda: mps.from_host(np.zeros(3)),
                 lambda: mps.from_host([1.0], "float64")):
        with pytest.raises(DeviceError) as e:
            make()
        assert str(e.value).startswith("torch:mps has no float64") and "\n" not in str(e.value)
    assert main(["gradcheck", "--device", "torch:mps", "--op", "exp"]) == 2  # float64 throughout
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and err.startswith("error: torch:mps has no float64")


def test_auto_never_imports_a_cpu_only_torch():
    """--device auto: CuPy's CUDA, then torch's CUDA/ROCm, then MPS, then NumPy's CPU; a torch built for
    the CPU alone is not imported (1-2 s) to be asked."""
    if probe.auto_kinds():
        pytest.skip(f"this torch may reach a GPU ({', '.join(probe.auto_kinds())})")
    code = "import sys, tinyllm; print(tinyllm.device('auto').name, 'torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    if select.cuda_problem(0) is None:
        pytest.skip("CuPy's GPU is usable here: auto takes it")
    assert r.stdout.split() == ["cpu", "False"] and r.stderr == ""


def test_auto_takes_torchs_cuda_then_mps_in_that_order(monkeypatch, isolated_backends):
    monkeypatch.setattr(select, "cuda_problem", lambda i: "CuPy is not installed")
    monkeypatch.setattr(torch_wing, "auto_kinds", lambda: ["torch:cuda", "torch:mps"])
    usable = set()
    monkeypatch.setattr(torch_wing, "status", lambda kind, index: (None if kind in usable else "no", None))
    picks = []
    for now in ("torch:mps", "torch:cuda"):
        usable.add(now)
        picks.append(get_backend("auto").name)
    assert picks == ["torch:mps", "torch:cuda:0"]


def test_auto_kinds_read_the_build_without_importing_it(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "torch").mkdir(parents=True)
    (site / "torch" / "__init__.py").write_text("raise ImportError('imported')\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "torch")
    for line, want in [("cuda: Optional[str] = None\nhip: Optional[str] = None", False),
                       ("cuda: Optional[str] = '12.4'\nhip: Optional[str] = None", True),
                       ("cuda = None\nhip = '6.2.41133'", True)]:
        (site / "torch" / "version.py").write_text(line + "\n")
        assert ("torch:cuda" in probe.auto_kinds()) is want, line


def test_only_backends_torch_imports_torch():
    """tinyllm/ speaks the Array API; torch is imported only in its wing (inside functions in probe.py)."""
    def imports_torch(p):
        for n in ast.walk(ast.parse(p.read_text())):
            names = [a.name for a in n.names] if isinstance(n, ast.Import) else \
                [n.module or ""] if isinstance(n, ast.ImportFrom) and n.level == 0 else []
            if any(m.split(".")[0] == "torch" or m == "array_api_compat.torch" for m in names):
                return True
        return False

    files = [p for d in ("tinyllm", "backends") for p in sorted((ROOT / d).rglob("*.py"))]
    assert [str(p.relative_to(ROOT)) for p in files if imports_torch(p)] == ["backends/torch/backend.py",
                                                                             "backends/torch/probe.py"]


def test_torch_records_nothing(isolated_backends):
    """tinyllm's backward computes the gradients: no tensor requires grad, no graph is kept."""
    m = tinyllm.models.build_model("gpt", vocab_size=11, device="torch", seed=1, **{k: TINY[k] for k in
                                   ("n_layer", "n_head", "n_embd", "block_size")})
    b = m.backend
    ids = b.from_host(np.arange(16).reshape(2, 8) % 11, "int64")
    logits, loss = m(ids, ids)
    loss.backward()
    arrays = [loss.data, logits.data] + [a for p in m.parameters() for a in (p.data, p.grad.data)]
    assert all(not a.requires_grad and a.grad_fn is None for a in arrays)


def test_token_streams_arrive_one_signed_size_wider():
    """torch's uint16/uint32 have no take (index_select), so torch holds them as int32/int64: same tokens."""
    from tinyllm.data.batches import Batcher

    t, c = get_backend("torch"), get_backend("cpu")
    toks = (np.arange(5000) * 7 % 700).astype(np.uint16)
    bt, bc = Batcher(toks, t, 8), Batcher(toks, c, 8)
    assert bt.stream.dtype == torch.int32 == t.dtype("uint16") and bc.stream.dtype == np.uint16
    for got, want in zip(bt.batch(4, t.rng(3)), bc.batch(4, c.rng(3))):
        np.testing.assert_array_equal(t.to_host(got), want)
    assert t.to_host(t.from_host(np.array([2**32 - 1], np.uint32))).tolist() == [2**32 - 1]
    for dtype in (None, "uint64"):
        with pytest.raises(ValueError, match="2\\*\\*63"):
            t.from_host(np.array([2**63], np.uint64), dtype)
    assert t.to_host(t.from_host([2**63 - 1], "uint64")).tolist() == [2**63 - 1]


def test_host_copies_never_share_memory():
    t = get_backend("torch")
    a = np.ones(3, np.float32)
    x = t.from_host(a)
    a[0] = 5
    h = t.to_host(x)
    h[1] = 7
    assert t.to_host(x).tolist() == [1.0, 1.0, 1.0]


def test_scatter_add_is_the_sorted_sums_on_torch():
    """CPU: index_put_'s accumulation; torch:cuda's path (sorted segment sums) runs on torch's tensors too."""
    t = get_backend("torch")
    rng = np.random.default_rng(0)
    idx, vals = rng.integers(0, 5, 40), rng.normal(size=(40, 3)).astype(np.float32)
    want = np.zeros((5, 3), np.float32)
    np.add.at(want, idx, vals)
    for add in (t.scatter_add, lambda *a: sorted_segment_add(t.xp, *a)):
        got = t.to_host(add(t.xp.zeros((5, 3), dtype=t.xp.float32), t.from_host(idx, "int64"), t.from_host(vals)))
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def _tensor_files(out):
    (path,) = glob.glob(str(out / "ckpt-*.safetensors"))
    raw = pathlib.Path(path).read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    return {k: (v["dtype"], v["shape"]) for k, v in header.items() if k != "__metadata__"}


def test_a_torch_runs_checkpoint_is_the_cpu_runs_file(tmp_path):
    """Same tensor names, dtypes and shapes; safetensors' own torch loader reads it."""
    from safetensors.torch import load_file

    kw = dict(steps=4, eval_interval=4, **TINY)
    for dev in ("torch", "cpu"):
        Trainer(TrainConfig(out=str(tmp_path / dev), device=dev, **kw), verbose=False).fit()
    assert _tensor_files(tmp_path / "torch") == _tensor_files(tmp_path / "cpu")
    (path,) = glob.glob(str(tmp_path / "torch" / "ckpt-*.safetensors"))
    assert all(v.dtype == torch.float32 for v in load_file(path).values())

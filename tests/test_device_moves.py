"""One device per tensor: ops refuse two devices, moves are explicit and counted, state loads across devices."""
import os
import subprocess
import sys

import numpy as np
import pytest

import tinyllm
from backends import DeviceError, get_backend, select
from tinyllm import Tensor
from tinyllm import ops as F
from tinyllm.cli import main
from tinyllm.models import build_model
from tinyllm.optim import AdamW
from tinyllm.autograd import no_grad

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(vocab_size=13, block_size=8, n_layer=1, n_head=2, n_embd=16)


def other(backend):
    """A device that is not `backend`."""
    return get_backend("strict:1" if backend.name != "strict:1" else "strict:2")


def test_an_op_on_two_devices_names_both(backend):
    a = tinyllm.tensor([1.0, 2.0], device=backend)
    b = tinyllm.tensor([3.0, 4.0], device=other(backend))
    for fn in (lambda: a + b, lambda: b * a, lambda: F.concat([a, b]), lambda: F.where(a.data > 0, a, b),
               lambda: F.attention(*(t.reshape(1, 1, 2, 1) for t in (a, b, a)))):
        with pytest.raises(DeviceError) as e:
            fn()
        assert backend.name in str(e.value) and other(backend).name in str(e.value)
    with pytest.raises(DeviceError, match=f"on {other(backend).name} was given to an op on {backend.name}"):
        F.embedding(tinyllm.tensor(np.ones((3, 2)), device=backend), other(backend).from_host([0, 1], "int64"))


def test_tensor_to_copies_through_the_host_and_is_counted(backend):
    src = other(backend)
    a = tinyllm.tensor([[1.0, 2.0]], device=src, requires_grad=True)
    s0, b0 = src.stats.copy(), backend.stats.copy()
    b = a.to(backend)
    assert b.device == backend.name and b.requires_grad and b.numpy().tolist() == [[1.0, 2.0]]
    assert (src.stats - s0).d2h_calls == 1 and (backend.stats - b0).h2d_calls == 1
    assert (backend.stats - b0).h2d_bytes == 8
    assert a.to(src) is a


def test_module_to_and_state_from_another_device(backend):
    src = build_model("gpt", device=other(backend), seed=3, **TINY)
    ids = [[1, 2, 3, 4]]
    with no_grad():
        want = src.backend.to_host(src(src.backend.from_host(ids, "int64"))[0].data)
    dst = build_model("gpt", device=backend, seed=9, **TINY)
    dst.load_state_dict(src.state_dict())  # the other device's arrays, copied in explicitly
    with no_grad():
        got = backend.to_host(dst(backend.from_host(ids, "int64"))[0].data)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    src.to(backend)
    assert all(p.backend == backend for p in src.parameters())
    with no_grad():
        np.testing.assert_array_equal(backend.to_host(src(backend.from_host(ids, "int64"))[0].data), got)


def test_loading_keeps_the_optimizers_flat_views(backend):
    m = build_model("gpt", device=backend, seed=1, **TINY)
    opt = AdamW(m.parameters(), lr=0.1)
    views = [p.data for p in m.parameters()]
    m.load_state_dict({n: other(backend).from_host(backend.to_host(p.data) + 1.0) for n, p in m.named_parameters()})
    assert all(p.data is v for p, v in zip(m.parameters(), views))  # copied in place
    flat = backend.to_host(opt.flat.data)
    assert np.allclose(flat, np.concatenate([backend.to_host(v).ravel() for v in views]))


def test_a_parameter_moved_after_its_optimizer_is_refused():
    m = build_model("gpt", device="cpu", seed=1, **TINY)
    opt = AdamW(m.parameters(), lr=0.1)
    m.to("strict:1")
    with pytest.raises(DeviceError, match="make the optimizer after Module.to"):
        opt.step()


# -- array-api-strict not installed ------------------------------------------------------------------

def test_strict_without_array_api_strict_is_one_line(monkeypatch, isolated_backends):
    for name in select.registered():
        if name.startswith("strict"):
            select.forget(name)
    monkeypatch.setitem(sys.modules, "array_api_strict", None)
    monkeypatch.delitem(sys.modules, "backends.strict", raising=False)
    with pytest.raises(DeviceError) as e:
        tinyllm.device("strict:1")
    assert str(e.value).startswith("device 'strict:1' needs array-api-strict, which is not installed; "
                                   "pip install array-api-strict")


BLOCK = "import sys; sys.modules['array_api_strict'] = None; "


@pytest.mark.parametrize("code", [
    "from tinyllm.cli import main; sys.exit(main(['train', '--device', 'strict', '--steps', '2', '--out', 'o']))",
    "from tinyllm.cli import main; sys.exit(main(['gradcheck', '--device', 'strict', '--op', 'exp']))",
    "import runpy; sys.path.insert(0, %r); sys.argv = ['xor.py', '--device', 'strict']; "
    "runpy.run_path(%r, run_name='__main__')" % (os.path.join(ROOT, "scripts", "tutorials"),
                                                 os.path.join(ROOT, "scripts", "tutorials", "xor.py")),
])
def test_strict_without_array_api_strict_exits_2(tmp_path, code):
    r = subprocess.run([sys.executable, "-c", BLOCK + code], capture_output=True, text=True, cwd=tmp_path,
                       env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and "pip install array-api-strict" in r.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("device, expect", [
    ("strict:7", "there is no strict:7; array-api-strict has strict (= strict:0), strict:1 and strict:2"),
    ("tpu", "unknown device 'tpu'"),
])
def test_bad_device_exits_2_from_train_and_gradcheck(tmp_path, capsys, device, expect):
    for argv in (["train", "--device", device, "--out", str(tmp_path / "o")], ["gradcheck", "--device", device]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.splitlines() == [err] and err.startswith("error: ") and expect in err
    assert not (tmp_path / "o").exists()

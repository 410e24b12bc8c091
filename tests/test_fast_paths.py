"""The CPU fast path (backends/fast_cpu.py) against the standard-only ops.

The gradient-check table already runs every op on cpu (fast path) and strict
(standard path); here each fused kernel is compared with the standard path
on the same backend, including the branches the table does not reach
(odd row widths in the halving max, duplicate embedding rows, Adam without
decoupled decay), and the library is shown to train the same without it.
"""
import numpy as np
import pytest

import tinyllm
from backends.fast_cpu import NumpyFast, _rowmax, load_fast, tune_malloc
from tinyllm import Tensor
from tinyllm import ops as F
from tinyllm.models import build_model
from tinyllm.optim import Adam, AdamW, clip_grad_norm, decay_groups


@pytest.fixture
def cpu():
    be = tinyllm.device("cpu")
    assert be.fast is not None, "the cpu backend should load the NumPy fast path"
    yield be
    be.fast = load_fast()


def _run(be, fast, fn, shapes, dtype, seed=0):
    """fn's output and input gradients with the fast path on or off."""
    saved = be.fast
    be.fast = fast
    try:
        rng = be.rng(seed)
        xs = [Tensor(rng.normal(s, dtype=dtype), device=be, requires_grad=True) for s in shapes]
        y = fn(*xs)
        w = be.rng(seed + 1).normal(y.shape, dtype=dtype)
        (y * Tensor(w, device=be)).sum().backward()
        return y.numpy(), [x.grad for x in xs]
    finally:
        be.fast = saved


CASES = {
    "gelu": (lambda x: F.gelu(x), [(3, 7, 16)]),
    "layer_norm": (lambda x, w, b: F.layer_norm(x, w, b), [(2, 5, 12), (12,), (12,)]),
    "layer_norm-no-bias": (lambda x, w: F.layer_norm(x, w), [(6, 9), (9,)]),
    "layer_norm-bare": (lambda x: F.layer_norm(x), [(6, 9)]),
    "cross_entropy": (lambda z: F.cross_entropy(z, np.arange(10) % 7), [(10, 7)]),
    "cross_entropy-ignore": (lambda z: F.cross_entropy(z, np.arange(10) % 4, ignore_index=1), [(10, 4)]),
    "attention-causal-64": (lambda q, k, v: F.attention(q, k, v), [(2, 3, 64, 8)] * 3),
    "attention-causal-odd": (lambda q, k, v: F.attention(q, k, v), [(2, 2, 13, 4)] * 3),
    "attention-full": (lambda q, k, v: F.attention(q, k, v, causal=False), [(1, 2, 9, 4)] * 3),
    "attention-kv-cache": (lambda q, k, v: F.attention(q, k, v), [(1, 2, 3, 4), (1, 2, 11, 4), (1, 2, 11, 4)]),
    "embedding-duplicates": (lambda w: F.embedding(w, np.array([[3, 1, 3], [0, 3, 1]])), [(5, 4)]),
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_fast_kernel_matches_standard_path(cpu, name, dtype):
    fn, shapes = CASES[name]
    y_std, g_std = _run(cpu, None, fn, shapes, dtype)
    y_fast, g_fast = _run(cpu, cpu.fast, fn, shapes, dtype)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == "float64" else dict(rtol=2e-4, atol=2e-6)
    assert y_fast.dtype == y_std.dtype
    np.testing.assert_allclose(y_fast, y_std, **tol)
    for a, b in zip(g_fast, g_std):
        assert a.dtype == b.dtype, f"{name}: the fast backward changed the dtype"
        np.testing.assert_allclose(a, b, **tol)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 8, 9, 13, 31, 64, 65, 127])
def test_halving_rowmax_is_exact(n):
    a = np.random.default_rng(n).normal(size=(3, 4, n)).astype(np.float32)
    assert np.array_equal(_rowmax(a), a.max(axis=-1, keepdims=True))


@pytest.mark.parametrize("opt_cls", [AdamW, Adam])
def test_fused_adam_matches_standard_update(cpu, opt_cls):
    results = []
    for fast in (cpu.fast, None):
        cpu.fast = fast
        rng = cpu.rng(3)
        p = tinyllm.nn.Parameter(rng.normal((4, 5)), device=cpu)
        opt = opt_cls([p], lr=1e-2, weight_decay=0.1)
        for step in range(3):
            p.grad = rng.normal((4, 5))
            opt.step()
        results.append(p.numpy())
    cpu.fast = load_fast()
    np.testing.assert_allclose(results[0], results[1], rtol=1e-6, atol=1e-7)


def _train(be, steps=3):
    m = build_model("gpt", vocab_size=17, block_size=8, n_layer=2, n_head=2, n_embd=16, bias=False, device=be)
    opt = AdamW(decay_groups(m, 0.1), lr=1e-3, betas=(0.9, 0.99))
    rng = be.rng(5)
    losses = []
    for _ in range(steps):
        x = rng.integers(0, 17, (3, 8))
        y = rng.integers(0, 17, (3, 8))
        _, loss = m(x, y)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm(m.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    return losses, m.state_dict()


def test_library_trains_the_same_without_the_fast_path(cpu):
    fast_losses, fast_state = _train(cpu)
    cpu.fast = None  # what a backend without fused kernels runs
    std_losses, std_state = _train(cpu)
    np.testing.assert_allclose(fast_losses, std_losses, rtol=1e-5)
    for k in fast_state:
        np.testing.assert_allclose(fast_state[k], std_state[k], rtol=1e-4, atol=1e-6)


def test_fast_object_has_the_methods_the_ops_look_for():
    fast = NumpyFast()
    for name in ("gelu", "layer_norm", "cross_entropy", "attention", "adam_step"):
        assert callable(getattr(fast, name)), name


def test_malloc_tuning_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("TINYLLM_MALLOC_TUNE", "0")
    assert tune_malloc() is False


def test_profile_times_ops_and_restores_them(cpu):
    from tinyllm.profile import profile
    from tinyllm.ops.registry import OPS
    from tinyllm.tensor import Tensor as T

    make, backward = T.__dict__["_make"], T.backward
    x = Tensor(cpu.rng(0).normal((4, 6)), device=cpu, requires_grad=True)
    with profile() as prof:
        y = F.gelu(x).transpose(0, 1).sum()
        y.backward()
        with prof.section("extra"):
            pass
    names = {r["op"] for r in prof.rows()}
    assert {"gelu", "transpose", "permute", "sum", "[extra]", "[backward engine]"} <= names
    assert prof.backward["gelu"][1] == 1 and prof.forward["gelu"][1] == 1
    # transpose calls permute: permute's time is not charged to transpose twice
    assert prof.forward["transpose"][0] >= 0.0
    assert F.gelu is OPS["gelu"] and tinyllm.ops.permute is OPS["permute"]
    assert T.__dict__["_make"] is make and T.backward is backward
    assert "gelu" in prof.table()

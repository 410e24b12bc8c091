"""Autograd engine behaviour: deep graphs, reuse, broadcasting, no_grad, dtypes."""
import numpy as np
import pytest

import tinyllm
from tinyllm import Tensor, no_grad


def T(backend, data, dtype="float64", grad=True):
    return Tensor(np.asarray(data, dtype=np.float64), device=backend, dtype=dtype, requires_grad=grad)


def test_deep_chain_10000_ops(backend):
    x = T(backend, [0.5])
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(backend.to_host(x.grad), [1.0001 ** 10_000], rtol=1e-9)


def test_value_reused(backend):
    a = T(backend, [3.0])
    b = a + a
    c = b * b  # c = 4 a^2, dc/da = 8a = 24
    c.sum().backward()
    assert backend.to_host(a.grad)[0] == pytest.approx(24.0)


def test_diamond_graph(backend):
    a = T(backend, [2.0])
    b = a * 3.0
    c = a.exp()
    d = (b * c).sum()  # d = 3a e^a, dd/da = 3e^a(1+a)
    d.backward()
    assert backend.to_host(a.grad)[0] == pytest.approx(3 * np.exp(2.0) * 3)


def test_broadcast_gradients_have_input_shapes(backend):
    a = T(backend, np.ones((2, 3, 4)))
    b = T(backend, np.ones((3, 1)))
    c = T(backend, np.ones((4,)))
    ((a * b) + c).sum().backward()
    assert a.grad.shape == (2, 3, 4) and b.grad.shape == (3, 1) and c.grad.shape == (4,)
    np.testing.assert_allclose(backend.to_host(b.grad), np.full((3, 1), 8.0))
    np.testing.assert_allclose(backend.to_host(c.grad), np.full((4,), 6.0))


def test_grads_accumulate_until_zeroed(backend):
    a = T(backend, [1.0, 2.0])
    (a * 2.0).sum().backward()
    (a * 2.0).sum().backward()
    np.testing.assert_allclose(backend.to_host(a.grad), [4.0, 4.0])
    a.zero_grad()
    assert a.grad is None


def test_no_grad_records_nothing(backend):
    a = T(backend, [1.0])
    with no_grad():
        b = a * 2.0
    assert not b.requires_grad and b._parents == ()
    assert tinyllm.is_grad_enabled()
    with pytest.raises(RuntimeError):
        b.sum().backward()


def test_detach_cuts_the_graph(backend):
    a = T(backend, [1.0])
    b = (a * 2.0).detach()
    assert not b.requires_grad
    c = (a * b).sum()
    c.backward()
    assert backend.to_host(a.grad)[0] == pytest.approx(2.0)


def test_float32_by_default_float64_on_request(backend):
    a = tinyllm.tensor([1.0, 2.0], device=backend)
    assert backend.dtype_name(a.dtype) == "float32"
    assert backend.dtype_name((a * 2.5 + 1).exp().dtype) == "float32"
    b = tinyllm.tensor([1.0, 2.0], device=backend, dtype="float64")
    assert backend.dtype_name(b.dtype) == "float64"
    i = tinyllm.tensor([1, 2], device=backend)
    assert backend.dtype_name(i.dtype) == "int64"


def test_float32_graph_keeps_float32_grads(backend):
    x = tinyllm.tensor(np.ones((4, 8)), device=backend, dtype="float32", requires_grad=True)
    w = tinyllm.tensor(np.ones((8, 3)), device=backend, dtype="float32", requires_grad=True)
    loss = tinyllm.cross_entropy(tinyllm.layer_norm(x @ w + 0.1), [0, 1, 2, 0])
    loss.backward()
    assert backend.dtype_name(w.grad.dtype) == "float32"


def test_numpy_and_item(backend):
    a = tinyllm.tensor([[1.5]], device=backend)
    assert isinstance(a.numpy(), np.ndarray)
    assert a.item() == 1.5
    with pytest.raises(ValueError):
        tinyllm.tensor([1.0, 2.0], device=backend).item()


def test_backward_needs_scalar(backend):
    a = T(backend, [1.0, 2.0])
    with pytest.raises(RuntimeError):
        (a * 2).backward()


def test_cross_entropy_matches_reference(backend):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(5, 7))
    t = np.array([0, 3, 6, 2, 3])
    ref = np.mean(np.log(np.exp(z).sum(1)) - z[np.arange(5), t])
    got = tinyllm.cross_entropy(T(backend, z), tinyllm.tensor(t, device=backend)).item()
    assert got == pytest.approx(ref, rel=1e-10)
    # ignore_index drops rows from both the sum and the mean
    got_ig = tinyllm.cross_entropy(T(backend, z), tinyllm.tensor(t, device=backend), ignore_index=3).item()
    keep = t != 3
    ref_ig = np.mean((np.log(np.exp(z).sum(1)) - z[np.arange(5), t])[keep])
    assert got_ig == pytest.approx(ref_ig, rel=1e-10)


def test_cross_entropy_is_stable_for_huge_logits(backend):
    z = T(backend, [[1000.0, 0.0], [-1000.0, 0.0]])
    loss = tinyllm.cross_entropy(z, tinyllm.tensor([0, 1], device=backend))
    assert np.isfinite(loss.item())
    loss.backward()
    assert np.all(np.isfinite(backend.to_host(z.grad)))


def test_attention_matches_naive(backend):
    rng = np.random.default_rng(1)
    q, k, v = (rng.normal(size=(2, 3, 6, 4)) for _ in range(3))
    s = q @ k.transpose(0, 1, 3, 2) / 2.0
    s = np.where(np.tril(np.ones((6, 6), bool)), s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    got = tinyllm.attention(T(backend, q), T(backend, k), T(backend, v)).numpy()
    np.testing.assert_allclose(got, p @ v, rtol=1e-10)


def test_tensor_to_other_device(backend):
    a = tinyllm.tensor([1.0, 2.0], device="cpu")
    b = a.to(backend)
    assert b.device == backend.name
    np.testing.assert_allclose(b.numpy(), [1.0, 2.0])


def test_gradcheck_catches_a_wrong_backward(backend):
    """The checker itself must be able to fail."""
    def bad(x):
        return Tensor.from_op(x.data * x.data, x.backend, (x,), lambda g: (g * x.data,))  # missing factor 2

    res = tinyllm.gradcheck(bad, T(backend, [1.0, 2.0]))
    assert not res.ok and "FAIL" in str(res)

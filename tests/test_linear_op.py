"""Linear's one op (issue 28): x @ W + b with one output array, so the graph keeps no product beside the sum."""
import numpy as np
import pytest

from tinyllm import ops as F
from tinyllm.autograd import Tensor
from tinyllm.nn import Linear


def test_a_linear_layer_keeps_one_array_for_backward(backend):
    lin = Linear(8, 16, rng=backend.rng(0)).to(backend.name)
    lin.bias.data = backend.from_host(np.linspace(-1, 1, 16, dtype=np.float32))
    x = Tensor(backend.from_host(np.ones((2, 3, 8), dtype=np.float32)), backend, requires_grad=True)
    y = lin(x)
    # matmul then add: y's parent was the product, a (2, 3, 16) array the graph held until backward
    assert [id(p) for p in y._parents] == [id(x), id(lin.weight), id(lin.bias)]
    want = backend.to_host(F.add(F.matmul(x, lin.weight), lin.bias).data)
    assert np.array_equal(backend.to_host(y.data), want)


def test_mixed_dtypes_take_matmul_and_add(backend):
    w = Tensor(backend.from_host(np.ones((4, 2), dtype=np.float32)), backend, requires_grad=True)
    b = Tensor(backend.from_host(np.ones(2, dtype=np.float64)), backend, requires_grad=True)
    x = Tensor(backend.from_host(np.ones((3, 4), dtype=np.float32)), backend)
    y = F.linear(x, w, b)
    assert y.dtype == F.add(F.matmul(x, w), b).dtype  # promoted as add promotes


@pytest.mark.parametrize("transpose_w", [False, True], ids=["w", "tied-wT"])
def test_a_weights_first_gradient_is_made_in_the_optimizers_buffer(backend, transpose_w):
    """The weight's gradient (a ProductGrad) is written into its slice of the flat buffer: on the CPU no
    (K, N) array is made beside it (GPT-2's tied head: 154 MB), and the sum is right on every backend."""
    from memtrace import backward_peak

    from tinyllm.optim.flat import FlatParams

    k, n, rows = 256, 32768, 4  # a (K, N) float32 weight is 32 MiB; the batch's arrays are 0.5 MB
    r = np.random.default_rng(0)
    wh = (r.standard_normal((n, k) if transpose_w else (k, n)) * 0.02).astype(np.float32)
    xh = r.standard_normal((rows, k)).astype(np.float32)
    w = Tensor(backend.from_host(wh), backend, requires_grad=True)
    FlatParams([w])
    x = Tensor(backend.from_host(xh), backend)
    loss = F.sum(F.linear(x, w, transpose_w=transpose_w))
    peak = backward_peak(loss)
    want = xh.sum(axis=0)[:, None] * np.ones((1, n), np.float32)  # d sum(x @ w) / dw = x^T @ ones
    got = backend.to_host(w.grad)
    np.testing.assert_allclose(got.T if transpose_w else got, want, rtol=1e-5, atol=1e-5)
    assert w.grad is w.grad_buffer
    if backend.kind == "cpu":
        assert peak < k * n * 4 // 4, f"backward allocated {peak / 2**20:.0f} MiB"


def test_the_profile_charges_a_weights_product_to_linear_not_the_engine(backend):
    """The engine makes the ProductGrad after linear's closure has returned; the profiler times that as
    linear's backward (else GPT-2's weight gradients showed as 31% '[backward engine]')."""
    from tinyllm.optim.flat import FlatParams
    from tinyllm.profile import profile

    w = Tensor(backend.from_host(np.ones((4, 3), np.float32)), backend, requires_grad=True)
    FlatParams([w])
    x = Tensor(backend.from_host(np.ones((2, 4), np.float32)), backend)
    with profile() as prof:
        F.sum(F.linear(x, w)).backward()
    assert prof.backward["linear"][1] == 2  # the closure, then the product made in the buffer
    np.testing.assert_allclose(backend.to_host(w.grad), np.full((4, 3), 2.0))

"""Linear's one op (issue 28): x @ W + b with one output array, so the graph keeps no product beside the sum."""
import numpy as np

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

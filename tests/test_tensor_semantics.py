"""Library tensors behave like NumPy where NumPy is clear, and the same on every backend (issue 14.11,
issue 13.9): truth values, None, mixing with NumPy arrays, integer dtypes, gradients on integers."""
import numpy as np
import pytest

import tinyllm
from tinyllm import Tensor


def test_bool_of_a_tensor_with_several_elements_is_ambiguous(backend):
    t = tinyllm.tensor([0.0, 1.0], device=backend)
    with pytest.raises(ValueError, match="ambiguous"):
        bool(t)
    with pytest.raises(ValueError, match="ambiguous"):
        bool(tinyllm.tensor([1.0, 0.0], device=backend) * 0.0)  # was True: len() == 2
    assert bool(tinyllm.tensor([0.0], device=backend)) is False  # one element: its value, not its length
    assert bool(tinyllm.tensor(2.5, device=backend)) is True


@pytest.mark.parametrize("bad", [None, [1.0, None], ["a", "b"]])
def test_tensor_of_none_or_strings_raises(backend, bad):
    with pytest.raises(TypeError):
        tinyllm.tensor(bad, device=backend)


def test_numpy_array_plus_tensor_is_a_tensor_not_an_object_array(backend):
    t = tinyllm.tensor([1.0, 2.0], device=backend, requires_grad=True)
    for out in (np.ones(2) + t, np.ones(2, dtype=np.float32) * t, np.float32(2.0) - t):
        assert isinstance(out, Tensor), type(out)
    y = np.full(2, 3.0, dtype=np.float32) * t
    np.testing.assert_allclose(y.numpy(), [3.0, 6.0])
    y.sum().backward()  # the graph is recorded through NumPy's operand
    np.testing.assert_allclose(backend.to_host(t.grad), [3.0, 3.0])


# every op on an integer tensor: (name, op, result dtype on every backend)
INT_CASES = [
    ("exp", lambda t: t.exp(), "float32"), ("log", lambda t: t.log(), "float32"),
    ("sqrt", lambda t: t.sqrt(), "float32"), ("tanh", lambda t: t.tanh(), "float32"),
    ("sigmoid", lambda t: t.sigmoid(), "float32"), ("relu", lambda t: t.relu(), "float32"),
    ("gelu", lambda t: t.gelu(), "float32"), ("softmax", lambda t: t.softmax(), "float32"),
    ("log_softmax", lambda t: t.log_softmax(), "float32"), ("mean", lambda t: t.mean(), "float32"),
    ("int / int", lambda t: t / t, "float32"), ("int / 2", lambda t: t / 2, "float32"),
    ("1 / int", lambda t: 1 / t, "float32"), ("int + 1.5", lambda t: t + 1.5, "float32"),
    ("int * 0.5", lambda t: t * 0.5, "float32"), ("int ** 2", lambda t: t ** 2, "float32"),
    ("int + float tensor", lambda t: t + tinyllm.tensor([0.5] * 4, device=t.backend), "float32"),
    ("int + [1.5]", lambda t: t + [1.5] * 4, "float32"),
    ("int + int", lambda t: t + t, "int64"), ("int * 3", lambda t: t * 3, "int64"),
    ("-int", lambda t: -t, "int64"), ("sum", lambda t: t.sum(), "int64"), ("max", lambda t: t.max(), "int64"),
    ("matmul", lambda t: t.reshape(2, 2) @ t.reshape(2, 2), "int64"),
]


@pytest.mark.parametrize("name, f, dtype", INT_CASES, ids=[c[0] for c in INT_CASES])
def test_integer_tensors_behave_the_same_on_every_backend(backend, name, f, dtype):
    t = tinyllm.tensor([1, 2, 3, 4], device=backend)
    out = f(t)
    assert backend.dtype_name(out.dtype) == dtype
    ref = f(tinyllm.tensor([1, 2, 3, 4], device="cpu"))  # the values agree with the cpu's
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-6)


def test_exp_of_an_integer_is_the_default_float_dtype(backend):
    out = tinyllm.tensor([0, 1], device=backend).exp()
    assert backend.dtype_name(out.dtype) == "float32"
    np.testing.assert_allclose(out.numpy(), [1.0, np.e], rtol=1e-6)


@pytest.mark.parametrize("data, dtype", [([1, 2], None), ([1.0, 2.0], "int64"), ([True, False], None)])
def test_requires_grad_on_an_integer_tensor_raises(backend, data, dtype):
    with pytest.raises(TypeError, match="only float tensors"):
        tinyllm.tensor(data, device=backend, dtype=dtype, requires_grad=True)
    assert tinyllm.tensor([1, 2], device=backend, dtype="float32", requires_grad=True).requires_grad

"""Library tensors behave like NumPy where NumPy is clear, and the same on every backend: truth values,
None, mixing with NumPy arrays, integer dtypes (float ops promote to float32), gradients on integers, and
shape errors that name the op and its operands' shapes."""
import numpy as np
import pytest

import tinyllm
from tinyllm import Tensor
from tinyllm import ops as F
from tinyllm.ops import ShapeError
from tinyllm.random import RandomStream


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
    # the float ops beyond the elementwise ones: layer ops, losses, attention, dropout, mixed matmul
    ("layer_norm", lambda t: F.layer_norm(t.reshape(2, 2)), "float32"),
    ("rms_norm", lambda t: F.rms_norm(t.reshape(2, 2)), "float32"),
    ("mse_loss", lambda t: F.mse_loss(t, [1, 1, 1, 1]), "float32"),
    ("cross_entropy", lambda t: F.cross_entropy(t.reshape(2, 2), [0, 1]), "float32"),
    ("attention", lambda t: F.attention(*[t.reshape(1, 1, 2, 2)] * 3), "float32"),
    ("dropout", lambda t: F.dropout(t, 0.5, RandomStream(seed=1)), "float32"),
    ("int @ float", lambda t: t.reshape(2, 2) @ tinyllm.tensor([[0.5], [1.0]], device=t.backend), "float32"),
    ("where(c, int, 0.5)", lambda t: F.where(_gt2(t), t, 0.5), "float32"),
    ("masked_fill(int, 0.5)", lambda t: F.masked_fill(t, _gt2(t), 0.5), "float32"),
    ("masked_fill(int, 7)", lambda t: F.masked_fill(t, _gt2(t), 7), "int64"),
]


def _gt2(t):
    return t.backend.from_host([False, False, True, True], "bool")


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


# -- incompatible shapes: one error naming the op and the shapes ---------------------------------------

def _t(backend, *shape):
    return tinyllm.tensor(backend.rng(0).normal(shape), device=backend)


SHAPE_CASES = [
    ("matmul", lambda b: _t(b, 2, 2) @ _t(b, 1, 3), "matmul: (2, 2) @ (1, 3)"),
    ("matmul-folded", lambda b: _t(b, 2, 3, 4) @ _t(b, 6, 5), "matmul: (2, 3, 4) @ (6, 5)"),  # was silently reshaped
    ("matmul-batch", lambda b: _t(b, 2, 2, 3) @ _t(b, 3, 3, 2), "matmul: (2, 2, 3) @ (3, 3, 2): the batch axes"),
    ("add", lambda b: _t(b, 2, 3) + _t(b, 2), "add: shapes (2, 3) and (2,) do not broadcast"),
    ("sub", lambda b: _t(b, 4) - _t(b, 3), "sub: shapes (4,) and (3,)"),
    ("mul", lambda b: _t(b, 2, 3) * [1.0, 2.0], "mul: shapes (2, 3) and (2,)"),
    ("div", lambda b: _t(b, 3) / _t(b, 2, 2), "div: shapes (3,) and (2, 2)"),
    ("concat", lambda b: F.concat([_t(b, 1, 3), _t(b, 2, 2)]), "concat: shapes (1, 3), (2, 2)"),
    ("reshape", lambda b: _t(b, 3).reshape(2, 2), "reshape: (3,) -> (2, 2)"),
    ("mse_loss", lambda b: F.mse_loss(_t(b, 3), _t(b, 2)), "mse_loss: shapes (3,) and (2,)"),
]


@pytest.mark.parametrize("name, f, message", SHAPE_CASES, ids=[c[0] for c in SHAPE_CASES])
def test_incompatible_shapes_name_the_op_and_both_shapes(backend, name, f, message):
    with pytest.raises(ShapeError) as e:
        f(backend)
    assert str(e.value).startswith(message), str(e.value)
    assert isinstance(e.value, ValueError)  # callers catching ValueError still do

"""unbind (q, k, v out of one projection): the parts' gradients land in one buffer,
the same as slicing with getitem gives, however the parts and the input are used."""
import numpy as np

from tinyllm import Tensor
from tinyllm import ops as F
from tinyllm.profile import profile


def _grads(backend, split, passes: int):
    x = Tensor(backend.rng(0).normal((2, 3, 4), dtype="float64"), device=backend, requires_grad=True)
    q, k, v = split(x)
    y = F.sum(q * k) + F.sum(F.tanh(x))  # v unused: its slice gets zeros; x has a second consumer
    for _ in range(passes):  # the same graph twice: gradients accumulate, each pass gets a fresh buffer
        y.backward()
    return x.grad


def test_unbind_gradients_equal_getitem_slices(backend):
    for passes in (1, 2):
        got = _grads(backend, lambda x: F.unbind(x, axis=1), passes)
        want = _grads(backend, lambda x: tuple(x[:, i, :] for i in range(3)), passes)
        np.testing.assert_allclose(backend.to_host(got), backend.to_host(want), rtol=1e-12, atol=1e-12)


def test_profile_charges_unbind_its_backward(backend):
    x = Tensor(backend.rng(0).normal((3, 5), dtype="float64"), device=backend, requires_grad=True)
    with profile() as prof:
        a, b, c = F.unbind(x, axis=0)
        F.sum(a * b * c).backward()
    assert prof.forward["unbind"][1] == 1 and prof.backward["unbind"][1] == 4  # three parts and the hub

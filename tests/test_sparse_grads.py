"""The embedding's backward adds only its rows into the weight's gradient (issue 28): no (V, C) array is
made, a tied weight's two gradients meet in the optimizer's buffer in place, and the sums are right."""

import numpy as np
import pytest
from memtrace import backward_peak

import tinyllm.ops as F
from tinyllm import Tensor
from tinyllm.optim.flat import FlatParams

V, C, N = 20000, 64, 12  # a (V, C) float32 table is 5 MB; N rows of gradient are 3 KB


def _numpy_backed(backend):
    if backend.kind not in ("cpu", "strict"):
        pytest.skip("tracemalloc sees NumPy's allocations only")


def _weight(backend, flat: bool):
    w = Tensor(np.random.default_rng(0).standard_normal((V, C)).astype(np.float32) * 0.02, device=backend,
               requires_grad=True)
    if flat:
        FlatParams([w])  # the optimizer's flat gradient buffer: w.grad_buffer
    return w


def _ids(backend, seed=1):
    return Tensor(np.random.default_rng(seed).integers(0, V, N), device=backend)


@pytest.mark.parametrize("flat", [True, False], ids=["flat-buffer", "own-grad"])
def test_embedding_backward_makes_no_table_sized_array(backend, flat):
    _numpy_backed(backend)
    w = _weight(backend, flat)
    w.grad = None
    x = F.embedding(w, _ids(backend))  # (N, C)
    loss = (x * x).sum()
    if flat:  # the rows go straight into the buffer
        assert backward_peak(loss) < V * C * 4 // 8
    else:  # .grad itself is the one (V, C) array made
        assert backward_peak(loss) < 1.25 * V * C * 4


def test_tied_weight_gradients_meet_in_the_buffer_in_place(backend):
    _numpy_backed(backend)
    w = _weight(backend, flat=True)
    ids, targets = _ids(backend, 1), _ids(backend, 2)
    logits = F.embedding(w, ids) @ w.T  # (N, V): the head reuses the table
    loss = F.cross_entropy(logits, targets)
    # the head's (V, C) product is the only table-sized array: no zeros for the rows, no sum of the two
    assert backward_peak(loss) < 1.5 * V * C * 4
    assert w.grad is w.grad_buffer


@pytest.mark.parametrize("flat", [True, False], ids=["flat-buffer", "own-grad"])
def test_tied_and_repeated_rows_sum_like_dense_gradients(backend, flat):
    w = _weight(backend, flat)
    ids = Tensor(np.array([3, 7, 3, 3, 19999, 0]), device=backend)  # repeats add up
    targets = Tensor(np.array([1, 2, 3, 4, 5, 6]), device=backend)
    for _ in range(2):  # a second backward accumulates onto the first
        F.cross_entropy(F.embedding(w, ids) @ w.T, targets).backward()
    wd = w.numpy().astype(np.float64)
    i, t = ids.numpy(), targets.numpy()
    x = wd[i]  # (6, C)
    z = x @ wd.T
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(6), t] -= 1
    p /= 6
    want = p.T @ x  # the head's part
    np.add.at(want, i, p @ wd)  # the embedding's rows
    np.testing.assert_allclose(w.grad if isinstance(w.grad, np.ndarray) else backend.to_host(w.grad),
                               2 * want, rtol=1e-4, atol=1e-7)

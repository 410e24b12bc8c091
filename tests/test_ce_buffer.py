"""The fused cross-entropy's (N, V) gradient is written into the array of the step before when nothing
holds it any more (backends/cpu/reuse.py, issue 28): a fresh 206 MB array at GPT-2's size faulted its
pages in again every step. A gradient still held (a leaf's .grad) is never written over."""
import numpy as np
import pytest
from memtrace import backward_peak

import tinyllm.ops as F
from tinyllm import Tensor

N, C, V = 256, 16, 32768  # (N, V) float32 is 32 MiB, the size from which the CPU backend keeps it


def _rng(seed):
    return np.random.default_rng(seed)


def test_second_step_allocates_no_logits_sized_gradient():
    """Head matmul + cross-entropy, as a GPT's last layer: the second step's backward reuses the first's
    (N, V) gradient, so it allocates far less than N * V floats (before: a fresh one each step)."""
    be = Tensor(np.zeros(1, np.float32), device="cpu").backend
    x = Tensor(_rng(0).standard_normal((N, C)).astype(np.float32), device=be, requires_grad=True)
    w = Tensor(_rng(1).standard_normal((C, V)).astype(np.float32) * 0.1, device=be, requires_grad=True)
    t = Tensor(_rng(2).integers(0, V, N), device=be)
    peaks, grads = [], []
    for _ in range(2):
        x.grad = w.grad = None
        peaks.append(backward_peak(F.cross_entropy(x @ w, t)))
        grads.append(np.array(w.grad))
    assert peaks[1] < N * V * 4 // 2, f"second backward allocated {peaks[1] / 2**20:.0f} MiB"
    np.testing.assert_array_equal(grads[0], grads[1])  # the reused array gives the same gradient


def test_a_held_gradient_is_not_written_over(backend):
    """Logits as a leaf keep their gradient in .grad: a second backward must give a new array, the first
    unchanged (on the CPU backend the kept array is the one .grad holds)."""
    z = Tensor(_rng(3).standard_normal((N, V)).astype(np.float32), device=backend, requires_grad=True)
    held = []
    for seed in (4, 5):
        z.grad = None
        F.cross_entropy(z, Tensor(_rng(seed).integers(0, V, N), device=backend)).backward()
        held.append((z.grad, np.array(backend.to_host(z.grad))))
    (g1, saved1), (g2, saved2) = held
    np.testing.assert_array_equal(np.asarray(backend.to_host(g1)), saved1)
    assert not np.array_equal(saved1, saved2)  # different targets: different gradients


def test_logits_the_caller_keeps_are_not_written_over(backend):
    """Large matmul products (the logits) come from kept arrays too: two forwards' logits, both held,
    are two arrays with their own values."""
    x1, x2 = (Tensor(_rng(s).standard_normal((N, C)).astype(np.float32), device=backend) for s in (6, 7))
    w = Tensor(_rng(8).standard_normal((C, V)).astype(np.float32), device=backend)
    first = x1 @ w
    saved = np.array(backend.to_host(first.data))
    second = x2 @ w
    np.testing.assert_array_equal(np.asarray(backend.to_host(first.data)), saved)
    assert not np.array_equal(np.asarray(backend.to_host(second.data)), saved)


def test_products_of_many_shapes_keep_arrays_for_a_few_shapes_only():
    """Scoring texts of many lengths makes a large product of each shape: the pool keeps the latest few
    shapes, not an array per length (memory that would only grow)."""
    from backends.cpu.reuse import PER_SHAPE, SHAPES, Kept

    kept = Kept(min_bytes=1 << 10)
    for rows in range(1, 40):
        kept.empty((rows, 512), np.float32)
    assert len(kept._arrays) == SHAPES
    assert sum(len(v) for v in kept._arrays.values()) <= SHAPES * PER_SHAPE

"""cuda:0 and cuda:1 in one process never cross, shown without a GPU.

No GPU is lent to CI, so CUDABackend (the real class: its namespace wrapper,
its activate(), its copies and its deterministic scatter-add) runs here on a
simulated CuPy: NumPy arrays tagged with the device that was current when they
were allocated, a per-thread current device that `with Device(i):` switches,
and CuPy's rule that a kernel (a ufunc, an array function, a gather) refuses
arrays of another device than the current one. Two Trainers, on cuda:1 and
cuda:0, train in turns, evaluate, save, resume and sample: any allocation or
kernel launch outside its backend's device fails the test.
"""
import numpy as np
import pytest

from backends import select
from backends.cuda import CUDABackend, sim
from backends.cuda.sim import CrossDeviceError
from tinyllm import Tensor, Trainer, TrainConfig
from tinyllm import ops as F
from tinyllm.random import RandomStream
from tinyllm.sample import generate_batch

_allocated = sim.ALLOCATED


def _current():
    return sim.current()


@pytest.fixture
def two_gpus(isolated_backends, monkeypatch):
    sim.reset()
    monkeypatch.setattr(sim, "DEVICES", [2])
    sim.Device(0).use()
    bs = [select.register(CUDABackend(i, cupy=sim.cupy, xp=sim.namespace)) for i in (0, 1)]
    return bs


def test_the_simulation_refuses_a_kernel_on_the_wrong_device(two_gpus):
    b0, b1 = two_gpus
    a1 = b1.from_host([1.0, 2.0])
    assert a1.dev == 1 and _current() == 0  # made on cuda:1, and the current device is back to 0
    with pytest.raises(CrossDeviceError):
        a1 + 1.0  # outside cuda:1's context: the kernel would launch on cuda:0
    with b1.activate():
        assert (a1 + 1.0).dev == 1
    assert b1.xp.zeros(3, dtype=b1.xp.float32, device=b1.device).dev == 1  # the namespace enters its device
    # ops and backward enter the device of their tensors themselves (the caller entered nothing)
    x = Tensor(b1.from_host([[0.5, -1.0], [2.0, 0.1]]), device=b1, requires_grad=True)
    y = (F.gelu(x @ x) * 2.0 + F.dropout(x, 0.5, RandomStream(1))).sum()
    y.backward()
    assert y.data.dev == 1 and x.grad.dev == 1 and _current() == 0


TINY = dict(n_layer=1, n_head=2, n_embd=16, block_size=8, batch_size=4, eval_iters=2, samples=0, dropout=0.1,
            steps=6, eval_interval=3, log_interval=2, skip_nonfinite=True)


def test_cuda0_and_cuda1_train_in_turns_without_crossing(two_gpus, tmp_path):
    b0, b1 = two_gpus
    t1 = Trainer(TrainConfig(out=str(tmp_path / "one"), device="cuda:1", **TINY), verbose=False)
    t0 = Trainer(TrainConfig(out=str(tmp_path / "zero"), device="cuda:0", **TINY), verbose=False)
    assert t1.backend is b1 and t0.backend is b0
    t1.fit(until=3)
    t0.fit(until=3)
    t1 = Trainer(TrainConfig(out=str(tmp_path / "one"), device="cuda:1", resume=True, **TINY), verbose=False)
    t1.fit()
    t0.fit()
    assert all(p.data.dev == 1 for p in t1.model.parameters()) and all(p.data.dev == 0 for p in t0.model.parameters())
    assert _allocated.get(1, 0) > 100 and _allocated.get(0, 0) > 100
    rows = generate_batch(t1.model, [0, 1, 2], 12, num_samples=2, temperature=1.0, top_p=0.9, seed=3)
    assert [len(r) for r in rows] == [12, 12]
    assert _current() == 0
    # the same run on the CPU: the CUDA path computes the same losses (its standard ops, no fused kernels)
    cpu = Trainer(TrainConfig(out=str(tmp_path / "cpu"), device="cpu", **TINY), verbose=False).fit()
    np.testing.assert_allclose(t1.losses, cpu.losses, rtol=1e-5)
    np.testing.assert_array_equal(t1.losses, t0.losses)  # and the same on both devices, resumed or not


def test_embedding_backward_on_cuda_is_a_deterministic_segment_sum(two_gpus):
    b0, _ = two_gpus
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 7, 500)
    vals = rng.normal(size=(500, 3)).astype(np.float32)
    with b0.activate():
        got = b0.to_host(b0.scatter_add(b0.xp.zeros((7, 3), dtype=b0.xp.float32, device=b0.device),
                                        b0.from_host(idx), b0.from_host(vals)))
    ref = np.zeros((7, 3))
    np.add.at(ref, idx, vals.astype(np.float64))
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)  # float64 prefix sums: exact to float32 rounding

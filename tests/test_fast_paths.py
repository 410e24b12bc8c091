"""The CPU fast path (backends/cpu/kernels.py) against the standard-only references.

Every fused kernel the CPU backend has is held to the reference kernel of the
same name (tinyllm/ops, registered with @reference), forward and backward, in
float32 and float64, including the branches the gradient-check table does not
reach: blocked attention over several blocks with a causal mask, a KV-cache
offset and a ragged last block; odd row widths in the halving max; matmul
broadcasting. The library is shown to train the same without the fast path,
the kernels to share the one signature table (backends/kernels.py), the
thread policy to drive the BLAS pool, and the profiler to time ops however
they were imported.
"""
import inspect
import threading
import tracemalloc

import numpy as np
import pytest

import tinyllm
from backends.cpu import attention as cpu_attention, blas_env, malloc, mkl, passes, threads
from backends.cpu.jit import jit_loops
from backends.cpu.jit.constants import GELU_A, GELU_C
from backends.cpu.kernels import NumpyFast, load_fast
from backends.cpu.mkl import blas_controllers
from backends.cpu.rows import rowmax
from backends.kernels import KERNEL_NAMES, FusedKernels
from backends.cpu.threads import ThreadPolicy, threads_for
from tinyllm import Tensor
from tinyllm import ops as F
from tinyllm.models import build_model
from tinyllm.ops import gelu as gelu_imported_by_name
from tinyllm.ops.kernels import REFERENCE
from tinyllm.optim import Adam, AdamW, clip_grad_norm, decay_groups


@pytest.fixture
def cpu():
    be = tinyllm.device("cpu")
    assert be.fast is not None, "the cpu backend should load the NumPy fast path"
    saved = be.fast
    yield be
    be.fast = saved


def _causal(tq, tk):
    return np.arange(tk)[None, :] <= np.arange(tq)[:, None] + (tk - tq)


def _ints(rng, high, shape):
    return rng.integers(0, high, size=shape)


# kernel name -> {case id: fn(rng, dtype) -> positional arguments after xp}
def _normal(rng, dtype, *shapes):
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


CASES = {
    "matmul": {
        "2d": lambda r, d: _normal(r, d, (3, 4), (4, 5)),
        "folded": lambda r, d: _normal(r, d, (2, 3, 4), (4, 5)),
        "batched": lambda r, d: _normal(r, d, (2, 3, 4), (2, 4, 5)),
        "bcast-left": lambda r, d: _normal(r, d, (3, 4), (2, 4, 5)),
        "bcast-both": lambda r, d: _normal(r, d, (2, 1, 3, 4), (5, 4, 2)),
    },
    "gelu": {"3d": lambda r, d: _normal(r, d, (3, 7, 16))},
    "layer_norm": {
        "affine": lambda r, d: _normal(r, d, (2, 5, 12), (12,), (12,)) + [1e-5],
        "no-bias": lambda r, d: _normal(r, d, (6, 9), (9,)) + [None, 1e-5],
        "bare": lambda r, d: _normal(r, d, (6, 9)) + [None, None, 1e-5],
    },
    "rms_norm": {
        "weight": lambda r, d: _normal(r, d, (2, 5, 12), (12,)) + [1e-5],
        "bare": lambda r, d: _normal(r, d, (6, 9)) + [None, 1e-5],
    },
    "softmax": {"last": lambda r, d: _normal(r, d, (4, 7)) + [-1], "axis0": lambda r, d: _normal(r, d, (4, 7)) + [0]},
    "log_softmax": {"last": lambda r, d: _normal(r, d, (4, 7)) + [-1]},
    "cross_entropy": {"rows": lambda r, d: _normal(r, d, (10, 7)) + [_ints(r, 7, (10,))]},
    "attention": {  # the kernels block at 8 rows here (see the fixture below)
        "causal-one-block": lambda r, d: _normal(r, d, *[(2, 3, 8, 4)] * 3) + [_causal(8, 8), 0.5],
        "causal-blocks": lambda r, d: _normal(r, d, *[(2, 2, 29, 4)] * 3) + [_causal(29, 29), 0.5],
        "full-blocks": lambda r, d: _normal(r, d, *[(1, 2, 19, 4)] * 3) + [None, 0.5],
        "kv-cache": lambda r, d: _normal(r, d, (1, 2, 3, 4), (1, 2, 11, 4), (1, 2, 11, 4)) + [_causal(3, 11), 0.5],
        "kv-cache-blocks": lambda r, d: _normal(r, d, (1, 2, 13, 4), (1, 2, 21, 4), (1, 2, 21, 4))
        + [_causal(13, 21), 0.5],
        # scores too large for the Cauchy-Schwarz shift: the kernels take the row max
        "large-scores": lambda r, d: _normal(r, d, *[(2, 2, 6, 4)] * 3) + [_causal(6, 6), 12.0],
        "large-scores-blocks": lambda r, d: _normal(r, d, *[(2, 2, 21, 4)] * 3) + [_causal(21, 21), 12.0],
        # a view of heads, as a fused projection gives them: strided q, k, v in every group
        "strided-heads": lambda r, d: [a.transpose(0, 2, 1, 3) for a in _normal(r, d, *[(2, 19, 3, 4)] * 3)]
        + [_causal(19, 19), 0.5],
    },
    "self_attention": {  # qkv (B, T, 3C), n_head
        "one-block": lambda r, d: _normal(r, d, (2, 8, 3 * 12)) + [3, _causal(8, 8), 0.5],
        "blocks": lambda r, d: _normal(r, d, (3, 29, 3 * 8)) + [2, _causal(29, 29), 0.5],
        "one-head-full": lambda r, d: _normal(r, d, (1, 19, 3 * 4)) + [1, None, 0.5],
        "large-scores-blocks": lambda r, d: _normal(r, d, (2, 21, 3 * 8)) + [2, _causal(21, 21), 12.0],
    },
}
FAST = NumpyFast()
PAIRS = [(name, cid) for name in KERNEL_NAMES if hasattr(FAST, name) for cid in CASES[name]]


@pytest.fixture
def small_blocks(monkeypatch):
    """Attention blocks of 8 rows, and groups of one (batch, head) pair at a time when blocked."""
    monkeypatch.setattr(cpu_attention, "ATTENTION_BLOCK", 8)
    monkeypatch.setattr(cpu_attention, "GROUP_BYTES", 1)


@pytest.fixture(params=["jit", "numpy"])
def jit(request):
    """numba's compiled loops (the [fast] extra) and the NumPy passes that serve without them."""
    if request.param == "jit" and jit_loops() is None:
        pytest.skip("numba is not installed (the [fast] extra): the NumPy passes are tested")
    return request.param


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def kernels(request, monkeypatch, jit):
    """The CPU kernels pinned to 1 or 2 threads; with 2 every kernel splits its rows, however few,
    and every pass runs in several chunks."""
    monkeypatch.setattr(threads, "MIN_SPLIT", 0)
    monkeypatch.setattr(passes, "CHUNK", 40)
    fast = NumpyFast()
    if jit == "numpy":
        fast.jit = None
    fast.threads.split_kernels = True  # the default only where OpenBLAS's workers sleep (blas_env.py)
    fast.threads.pin(request.param)
    yield fast
    fast.threads.pin(1)  # the BLAS pool is the process's


def _grad_seed(rng, out, name):
    if name == "cross_entropy":  # backward takes each row's scale
        return rng.standard_normal(out.shape[0]).astype(out.dtype)
    return rng.standard_normal(out.shape).astype(out.dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name,case", PAIRS, ids=[f"{n}-{c}" for n, c in PAIRS])
def test_fast_kernel_matches_its_reference(cpu, small_blocks, kernels, name, case, dtype):
    args = CASES[name][case](np.random.default_rng(0), dtype)
    out_ref, bwd_ref = REFERENCE[name](cpu.xp, *args)
    out_fast, bwd_fast = getattr(kernels, name)(cpu.xp, *args)
    g = _grad_seed(np.random.default_rng(1), np.asarray(out_ref), name)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == "float64" else dict(rtol=2e-4, atol=2e-6)
    if dtype == "float32" and case.startswith("large"):  # scores ~50: float32 rounding of q*scale vs (q k^T)*scale
        tol = dict(rtol=2e-3, atol=2e-5)
    assert out_fast.dtype == out_ref.dtype and out_fast.shape == out_ref.shape
    np.testing.assert_allclose(out_fast, out_ref, **tol)
    grads_ref, grads_fast = bwd_ref(g), bwd_fast(g)
    assert len(grads_fast) == len(grads_ref)
    for a, b in zip(grads_fast, grads_ref):
        if b is None:
            assert a is None
            continue
        assert a.dtype == b.dtype, f"{name}: the fast backward changed the dtype"
        np.testing.assert_allclose(a, b, **tol)


def test_every_fast_kernel_has_a_reference_and_the_protocol_signature():
    names = [n for n in dir(FAST) if not n.startswith("_") and callable(getattr(FAST, n))]
    kernels = [n for n in names if n != "adam_step"]  # the optimizer's update is not an op kernel
    assert set(kernels) <= set(KERNEL_NAMES), set(kernels) - set(KERNEL_NAMES)
    assert set(KERNEL_NAMES) <= set(REFERENCE), "every kernel in backends/kernels.py needs a reference"
    for n in KERNEL_NAMES:
        want = list(inspect.signature(getattr(FusedKernels, n)).parameters)[1:]  # without self
        assert list(inspect.signature(REFERENCE[n]).parameters) == want, n
        if hasattr(FAST, n):
            assert list(inspect.signature(getattr(FAST, n)).parameters) == want, n


def test_ops_take_the_reference_without_a_fast_path(cpu, monkeypatch):
    """The lookup is the only switch: with no fast object every op runs the reference."""
    calls = []
    ref = REFERENCE["gelu"]
    monkeypatch.setitem(REFERENCE, "gelu", lambda xp, x: calls.append("ref") or ref(xp, x))
    x = Tensor(cpu.rng(0).normal((3, 4)), device=cpu)
    F.gelu(x)
    assert calls == []  # the CPU backend's own kernel ran
    cpu.fast = None
    F.gelu(x)
    assert calls == ["ref"]


def _attention_peak_bytes(be, T, B=1, nh=2, hs=16):
    """Peak bytes the CPU attention kernel allocates, forward and backward, at context T."""
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((B, nh, T, hs)).astype(np.float32) for _ in range(3))
    mask = tinyllm.ops.causal_mask(be, T, T)
    tracemalloc.start()
    try:
        out, bwd = be.fast.attention(be.xp, q, k, v, mask, 0.25)
        bwd(np.ones_like(out))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_attention_memory_grows_linearly_with_context(cpu):
    """4x the context past one block: about 4x the memory (a (T, T) score matrix would be 16x)."""
    _attention_peak_bytes(cpu, 64)  # one-time allocations out of the way
    small, large = _attention_peak_bytes(cpu, 256), _attention_peak_bytes(cpu, 1024)
    assert large < 5 * small, f"T=256: {small} bytes, T=1024: {large} bytes"


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 8, 9, 13, 31, 64, 65, 127])
def test_halving_rowmax_is_exact(n):
    a = np.random.default_rng(n).normal(size=(3, 4, n)).astype(np.float32)
    assert np.array_equal(rowmax(a), a.max(axis=-1, keepdims=True))


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
    np.testing.assert_allclose(results[0], results[1], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("decoupled", [True, False], ids=["adamw", "adam"])
def test_fused_adam_in_chunks_and_threads_is_the_one_pass_update(kernels, jit, decoupled):
    """The step runs chunk by chunk, split across threads (fixture: chunks of 40, 2 threads):
    the update of one pass over the whole buffer (numba's loop may fuse a multiply-add: 1e-5)."""
    rng = np.random.default_rng(4)
    p, g, m = (rng.standard_normal(203).astype(np.float32) for _ in range(3))
    v = np.abs(rng.standard_normal(203)).astype(np.float32)
    want = [a.copy() for a in (p, m, v)]
    wp, wm, wv = want
    gg = g + 0.1 * wp if not decoupled else g
    wm *= 0.9
    wm += 0.1 * gg
    wv *= 0.99
    wv += (gg * gg) * np.float32(1.0 - 0.99)
    step = np.sqrt(wv) * np.float32(1.0 / np.sqrt(1.0 - 0.99 ** 3)) + np.float32(1e-8)
    step = (wm / step) * np.float32(1e-2 / (1.0 - 0.9 ** 3))
    if decoupled:
        wp *= np.float32(1.0 - 1e-2 * 0.1)
    wp -= step
    kernels.adam_step(p, g, m, v, 1e-2, 0.9, 0.99, 1e-8, 0.1, 3, decoupled)
    for got, ref in zip((p, m, v), want):
        np.testing.assert_allclose(got, ref, rtol=1e-6 if jit == "numpy" else 1e-5, atol=0)


def _train(be, steps=3, block=8):
    m = build_model("gpt", vocab_size=17, block_size=block, n_layer=2, n_head=2, n_embd=16, bias=False, device=be)
    opt = AdamW(decay_groups(m, 0.1), lr=1e-3, betas=(0.9, 0.99))
    rng = be.rng(5)
    losses = []
    for _ in range(steps):
        x = rng.integers(0, 17, (3, block))
        y = rng.integers(0, 17, (3, block))
        _, loss = m(x, y)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm(m.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    return losses, m.state_dict()


@pytest.mark.parametrize("block", [8, 20])
def test_library_trains_the_same_without_the_fast_path(cpu, small_blocks, block):
    fast_losses, fast_state = _train(cpu, block=block)
    cpu.fast = None  # what a backend without fused kernels runs
    std_losses, std_state = _train(cpu, block=block)
    np.testing.assert_allclose(fast_losses, std_losses, rtol=1e-5)
    for k in fast_state:
        np.testing.assert_allclose(fast_state[k], std_state[k], rtol=1e-4, atol=1e-6)


# -- process-wide state -------------------------------------------------------------------------

def test_backend_creation_leaves_the_allocator_alone(monkeypatch):
    """mallopt tuning is process-wide: only a training program turns it on, explicitly."""
    def refuse():
        raise AssertionError("tune_malloc called on backend creation")

    monkeypatch.setattr(malloc, "tune_malloc", refuse)
    from backends.cpu.backend import CPUBackend

    assert CPUBackend().fast is not None
    assert load_fast() is not None


@pytest.mark.parametrize("ncpu,others,cap,want", [
    (2, 0.0, 2, 2), (2, 0.2, 2, 2), (2, 0.5, 2, 1), (2, 1.0, 2, 1), (2, 1.9, 2, 1),
    (4, 1.0, 4, 3), (4, 0.0, 2, 2), (1, 0.0, 1, 1), (8, 9.0, 8, 1)])
def test_thread_policy_leaves_busy_cores_alone(ncpu, others, cap, want):
    assert threads_for(ncpu, others, cap) == want


def test_thread_policy_sizes_blas_and_splits_the_other_work_itself(monkeypatch):
    """Matmuls are BLAS's to split, at the policy's thread count; the other kernels' parts
    run on the policy's own helpers."""
    blas = blas_controllers()
    if not blas:
        pytest.skip("no BLAS library that threadpoolctl can see")
    policy = ThreadPolicy(max_threads=3, blas=blas, on_helper=mkl.one_thread_here)  # as NumpyFast makes it
    assert all(c.get_num_threads() == 1 for c in blas)
    assert policy.threads == 1 and policy.ranges(100, 10**9) == [(0, 100)]  # starts narrow
    policy.pin(2)
    assert all(c.get_num_threads() == 2 for c in blas)
    policy.pin(1)  # a busy core: BLAS drops back too
    assert all(c.get_num_threads() == 1 for c in blas)
    policy.pin(3)
    policy.split_kernels = False
    assert policy.ranges(100, 10**9) == [(0, 100)]  # the kernels run whole unless split_kernels
    policy.split_kernels = True
    assert policy.ranges(100, 10**9) == [(i * 100 // 9, (i + 1) * 100 // 9) for i in range(9)]  # 3 pieces a thread
    assert policy.ranges(100, 2 * threads.MIN_SPLIT) == [(0, 50), (50, 100)]  # parts worth a thread only
    seen, together = [], threading.Barrier(3, timeout=10)

    def part(i, j):
        together.wait()  # passes only when the three parts run at the same time
        seen.append((i, j, threading.current_thread().name))

    def blas_part(i, j):
        together.wait()
        seen.append([c.get_num_threads() for c in blas])

    seen.clear()
    policy.run(blas_part, policy.ranges(9, 10**9))
    assert seen == [[1] * len(blas)] * 9  # each part's matmuls on its own core, not all in one pool
    assert all(c.get_num_threads() == 3 for c in blas)  # and the pool back to the policy's count after

    def failing_part(i, j):
        if i:
            raise ZeroDivisionError(f"part {i}")

    with pytest.raises(ZeroDivisionError, match="part"):
        policy.run(failing_part, policy.ranges(9, 10**9))  # a helper's error reaches the caller
    assert all(c.get_num_threads() == 3 for c in blas)
    policy.run(part, policy.ranges(9, 10**9))  # the helpers serve on after an error
    policy.pin(1)  # the BLAS pool is the process's: leave it as the CPU backend's policy set it


def test_a_late_helper_takes_fewer_pieces():
    """The threads take the pieces in turn: while a helper is held up (here its first piece
    sleeps, as a vCPU slow to wake would), the calling thread takes the rest, each piece once."""
    import time

    policy = ThreadPolicy(max_threads=2)
    policy.split_kernels = True
    policy.pin(2)
    try:
        done, helper_started = [], []

        def piece(i, j):
            if threading.current_thread() is not threading.main_thread() and not helper_started:
                helper_started.append(i)
                time.sleep(0.3)
            done.append((i, threading.current_thread() is threading.main_thread()))

        policy.run(piece, [(i, i + 1) for i in range(8)])
        assert sorted(i for i, _ in done) == list(range(8))
        assert sum(main for _, main in done) == 8 - len(helper_started)  # all but the one the helper sleeps in
    finally:
        policy.pin(1)


@pytest.mark.parametrize("preset,numpy_first,want_env,want_sleep", [
    (None, False, "4", True),  # tinyllm first: OpenBLAS's workers sleep, the kernels split
    (None, True, None, False),  # numpy loaded before tinyllm: too late to set, the kernels run whole
    ("28", False, "28", False),  # the user's own value is kept, and believed
    ("8", True, "8", True),
])
def test_openblas_workers_are_told_to_sleep_before_numpy_loads_it(preset, numpy_first, want_env, want_sleep):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if preset is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = preset
    code = ("import os\n" + ("import numpy\n" if numpy_first else "") +
            "import tinyllm\nfrom backends.cpu import blas_env, threads\n"
            "print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'), blas_env.WORKERS_SLEEP, threads.ThreadPolicy.split_kernels)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(want_env), str(want_sleep), str(want_sleep)]


class _LastPieceFirst(ThreadPolicy):
    """A policy whose pieces finish in reverse order, as they may when a helper runs ahead."""

    def run(self, fn, ranges):
        for r in reversed(ranges):
            fn(*r)


def test_layer_norm_weight_gradients_do_not_depend_on_which_piece_finishes_first(jit, monkeypatch):
    """The pieces' column sums of the weight and bias gradients are added in the pieces' order: the
    same bits however the threads ran (the NumPy passes added them in the order they finished)."""
    monkeypatch.setattr(threads, "MIN_SPLIT", 0)
    rng = np.random.default_rng(0)
    x, g = (rng.standard_normal((64, 48)).astype(np.float32) for _ in range(2))
    w, b = rng.standard_normal(48).astype(np.float32), rng.standard_normal(48).astype(np.float32)
    grads = []
    for policy in (ThreadPolicy(max_threads=4), _LastPieceFirst(max_threads=4)):
        policy.split_kernels = True
        policy.pin(4)
        fast = NumpyFast(threads=policy)
        if jit == "numpy":
            fast.jit = None
        _, backward = fast.layer_norm(np, x, w, b, 1e-5)
        grads.append(backward(g))
        policy.pin(1)
    for got, want in zip(*grads):
        assert np.array_equal(got, want)


def test_jit_layer_norm_keeps_nan_and_inf(jit):
    """The compiled loops may reorder sums, but a NaN or inf input still comes out non-finite
    (the trainer's skip-nonfinite check depends on it)."""
    x = np.ones((3, 8), dtype=np.float32)
    x[0, 2], x[1, 5] = np.nan, np.inf
    fast = NumpyFast()
    if jit == "numpy":
        fast.jit = None
    with np.errstate(all="ignore"):
        out, backward = fast.layer_norm(np, x, np.ones(8, np.float32), np.zeros(8, np.float32), 1e-5)
        dx, gw, gb = backward(np.ones_like(out))
    assert np.isnan(out[0]).all() and not np.isfinite(out[1]).all() and np.isfinite(out[2]).all()
    assert not np.isfinite(dx[0]).any() and np.isfinite(dx[2]).all() and not np.isfinite(gw).all()


# -- profiler --------------------------------------------------------------------------------------

def test_profile_times_ops_however_they_were_imported(cpu):
    from tinyllm.ops.registry import OPS, set_hook
    from tinyllm.profile import profile
    from tinyllm.autograd import Tensor as T, set_backward_hook

    backward = T.backward
    x = Tensor(cpu.rng(0).normal((4, 6)), device=cpu, requires_grad=True)
    with profile() as prof:
        assert T.backward is backward  # hooked, not patched
        y = gelu_imported_by_name(x).transpose(0, 1).sum()  # imported by name before profiling began
        y.backward()
        with prof.section("extra"):
            pass
    names = {r["op"] for r in prof.rows()}
    assert {"gelu", "transpose", "permute", "sum", "[extra]", "[backward engine]"} <= names
    assert prof.backward["gelu"][1] == 1 and prof.forward["gelu"][1] == 1
    # transpose calls permute: the backward is permute's, charged once
    assert prof.backward["permute"][1] == 1 and "transpose" not in prof.backward
    assert F.gelu is OPS["gelu"] is gelu_imported_by_name
    assert set_hook(None) is None and set_backward_hook(None) is None  # both hooks removed on exit
    assert "gelu" in prof.table()


def test_jit_rational_tanh_is_within_4e_7_of_tanh_over_float32():
    """float32 GELU's s = (1 + tanh(u)) / 2 (jit/gelu.py: Eigen's 13/6 rational tanh) against float64
    tanh, for inputs whose u = c (x + a x^3) runs over -40..40, past the clamp at 7.9."""
    if jit_loops() is None:
        pytest.skip("numba is not installed (the [fast] extra)")
    x = np.linspace(-6, 6, 400_001).astype(np.float32)
    out, dx = np.empty_like(x), np.empty_like(x)
    loops = jit_loops()
    loops.gelu_forward(x, out)
    x64 = x.astype(np.float64)
    c, a = GELU_C, GELU_A
    want = 0.5 + 0.5 * np.tanh(c * (x64 + a * x64 ** 3))
    nz = x64 != 0
    s = out[nz] / x64[nz]  # out = x s rounded once: out / x is s to 2^-24 relative
    assert np.abs(s - want[nz]).max() < 4e-7 + 2.0 ** -24
    np.testing.assert_allclose(out, x64 * want, rtol=1e-6, atol=1e-6)  # s near 0 is float32-rounded: |x| 2^-23
    # the backward computes the gate again from x: GELU'(x) = s + x c (1 + 3 a x^2) (1 - tanh^2) / 2
    k1, k3, one = (np.float32(v) for v in (2 * c, 6 * c * a, 1.0))
    loops.gelu_backward(np.ones_like(x), x, dx, k1, k3, one)
    k = x64 * c * (1 + 3 * a * x64 ** 2) * 2  # s's factor in GELU': s's error enters it times 1 + |k| (up to 60)
    grad = want + k * want * (1 - want)
    assert (np.abs(dx - grad) <= 4e-7 * (1 + np.abs(k)) + 1e-6 * np.abs(grad)).all()


def test_jit_exp_is_within_2e_7_of_exp_and_clamps_the_far_left():
    """Attention's float32 exp (jit/exp.py: Cephes' polynomial and 2^n in the exponent bits)
    against float64 exp over the range its scores take; far left it gives exp(-87) ~ 1.6e-38 for 0."""
    if jit_loops() is None:
        pytest.skip("numba is not installed (the [fast] extra)")
    x = np.linspace(-87, 88, 1_000_001).astype(np.float32)
    out = np.empty_like(x)
    jit_loops().exp_array(x, out)
    want = np.exp(x.astype(np.float64))
    assert (np.abs(out - want) / want).max() < 2e-7
    far = np.array([-1e30, -200.0, -88.0, np.nan], dtype=np.float32)
    jit_loops().exp_array(far, out[:4])
    assert (out[:3] < 2e-38).all() and (out[:3] >= 0).all() and np.isnan(out[3])  # NaN stays NaN
    x64 = np.linspace(-700, 700, 1001)
    out64 = np.empty_like(x64)
    jit_loops().exp_array(x64, out64)  # float64 (the gradient checks) keeps math.exp
    np.testing.assert_allclose(out64, np.exp(x64), rtol=1e-15)


@pytest.mark.parametrize("T", [6, 21], ids=["whole", "blocked"])
def test_attention_keeps_nan_and_inf(small_blocks, jit, T):
    """A NaN or inf in a row of q comes out non-finite in that query's output, and only there;
    its gradients are non-finite too (the trainer's skip-nonfinite check depends on it)."""
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 2, T, 4)).astype(np.float32) for _ in range(3))
    q[0, 0, 3, 1], q[0, 1, 4, 2] = np.nan, np.inf
    fast = NumpyFast()
    if jit == "numpy":
        fast.jit = None
    mask = np.tril(np.ones((T, T), dtype=bool))
    with np.errstate(all="ignore"):
        out, backward = fast.attention(np, q, k, v, mask, 0.5)
        dq, dk, dv = backward(np.ones_like(out))
    bad = ~np.isfinite(out).all(axis=-1)  # (1, 2, T): the queries whose output is not finite
    assert bad[0, 0, 3] and bad[0, 1, 4]
    assert np.isfinite(out[0, 0, :3]).all() and np.isfinite(out[0, 1, :4]).all()
    assert not np.isfinite(dq[0, 0, 3]).all() and not np.isfinite(dk[0, 0]).all()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cpu_scatter_add_sums_duplicate_rows_like_add_at(cpu, jit, monkeypatch, dtype):
    """The embedding's backward: numba's row-order loop and sort + reduceat both give np.add.at's sums."""
    import backends.cpu.backend as cpu_backend

    if jit == "numpy":
        monkeypatch.setattr(cpu_backend, "jit_loops", lambda: None)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 9, size=500)  # every row index many times
    vals = rng.standard_normal((500, 2, 3)).astype(dtype)
    target = rng.standard_normal((9, 2, 3)).astype(dtype)
    want = target.copy()
    np.add.at(want, idx, vals)
    got = cpu.scatter_add(target, idx, vals)
    np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == "float32" else 1e-12)
    assert got is target  # in place

"""The GPU's fused kernels (backends/cuda/kernels/*.cu), proven without a GPU.

Each CUDA source compiles for sm_80 and sm_90 with NVRTC (cuda-bindings, no driver needed), and the
same source, compiled for the CPU with kernels/cpu_shim.h, runs here under the simulated CuPy against
the standard-only reference kernels: bit for bit for the Philox words and dropout masks, to float
rounding for the rest. A training step of the gpu-baby model stays within its launch budget.
"""
import pathlib
import sys
import threading

import array_api_compat.numpy as npx
import numpy as np
import pytest

from backends import get_backend, select
from backends.cuda import CUDABackend, kernels, sim
from backends.cuda.cpu_run import compiler
from backends.cuda.fused import CudaFused
from tinyllm.ops.kernels import REFERENCE
from tinyllm.random import RandomStream, random_words

ROOT = pathlib.Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(compiler() is None, reason="no C++ compiler (g++) to run the CUDA sources on the CPU")
TOL = {np.float32: 2e-5, np.float64: 1e-12}  # sums in another order than NumPy's


def _nvrtc_problem():
    try:
        from cuda.bindings import nvrtc

        err = nvrtc.nvrtcVersion()[0]
        return None if err == nvrtc.nvrtcResult.NVRTC_SUCCESS else f"NVRTC answered {err}"
    except Exception as e:  # ImportError, or the library not found
        return f"NVRTC is not installed (pip install -e \".[cuda-dev]\"): {type(e).__name__}: {str(e)[:80]}"


@pytest.mark.parametrize("arch", kernels.ARCHS)
@pytest.mark.parametrize("family", kernels.FAMILIES)
def test_every_kernel_source_compiles_for_the_gpu(family, arch):
    problem = _nvrtc_problem()
    if problem:
        pytest.skip(problem)
    cubin = kernels.compile_cubin(family, arch)
    assert cubin[:4] == b"\x7fELF" and len(cubin) > 1000
    for name in kernels.entries(family):
        assert name.encode() in cubin  # every entry point is in the binary


@pytest.fixture
def gpu(monkeypatch):
    """The simulated CuPy (two devices), its namespace and the fused kernels, on device 0."""
    sim.reset()
    monkeypatch.setattr(sim, "DEVICES", [2])
    sim.Device(0).use()
    return sim.cupy, sim.namespace, CudaFused(sim.cupy)


def _close(got, want, dt):
    np.testing.assert_allclose(sim.cupy.asnumpy(got), want, rtol=TOL[dt], atol=TOL[dt])


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("affine", [(True, True), (False, False), (True, False)])
def test_layer_norm_matches_the_reference(gpu, dt, affine):
    cp, xp, fused = gpu
    rng = np.random.default_rng(0)
    x, g = rng.normal(size=(3, 70, 40)).astype(dt), rng.normal(size=(3, 70, 40)).astype(dt)
    w = rng.normal(size=40).astype(dt) if affine[0] else None
    b = rng.normal(size=40).astype(dt) if affine[1] else None
    out, bw = fused.layer_norm(xp, cp.asarray(x), None if w is None else cp.asarray(w),
                               None if b is None else cp.asarray(b), 1e-5)
    ref, rbw = REFERENCE["layer_norm"](npx, x, w, b, 1e-5)
    _close(out, ref, dt)
    for got, want in zip(bw(cp.asarray(g)), rbw(g)):
        assert (got is None) == (want is None)
        if want is not None:
            _close(got, want, dt)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_gelu_and_cross_entropy_match_the_reference(gpu, dt):
    cp, xp, fused = gpu
    rng = np.random.default_rng(1)
    x, g = (rng.normal(size=(5, 300)) * 3).astype(dt), rng.normal(size=(5, 300)).astype(dt)
    out, bw = fused.gelu(xp, cp.asarray(x))
    ref, rbw = REFERENCE["gelu"](npx, x)
    _close(out, ref, dt)
    _close(bw(cp.asarray(g))[0], rbw(g)[0], dt)
    z, t, scale = (rng.normal(size=(9, 333)) * 4).astype(dt), rng.integers(0, 333, 9), rng.random(9).astype(dt)
    loss, bw = fused.cross_entropy(xp, cp.asarray(z), cp.asarray(t))
    ref, rbw = REFERENCE["cross_entropy"](npx, z, t)
    _close(loss, ref, dt)
    _close(bw(cp.asarray(scale))[0], rbw(scale)[0], dt)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("causal", [True, False])
def test_self_attention_matches_the_reference(gpu, dt, causal):
    cp, xp, fused = gpu
    rng = np.random.default_rng(2)
    B, T, H, hs = 2, 11, 3, 4
    qkv, g = rng.normal(size=(B, T, 3 * H * hs)).astype(dt), rng.normal(size=(B, T, H * hs)).astype(dt)
    mask = np.tril(np.ones((T, T), dtype=bool)) if causal else None
    out, bw = fused.self_attention(xp, cp.asarray(qkv), H, None if mask is None else cp.asarray(mask), 0.4)
    ref, rbw = REFERENCE["self_attention"](npx, qkv, H, mask, 0.4)
    _close(out, ref, dt)
    _close(bw(cp.asarray(g))[0], rbw(g)[0], dt)


@pytest.mark.parametrize("n, seed, site, step", [(1, 0, 0, 0), (6, 3, 7, 1), (1001, 2**40 + 5, 0x5A3D1E, 2**33 + 7)])
def test_philox_words_are_random_pys_bit_for_bit(gpu, n, seed, site, step):
    cp, xp, fused = gpu
    strict = get_backend("strict")
    want = strict.to_host(random_words(strict, n, seed, site, step))
    got = cp.asnumpy(fused.philox_words(xp, n, seed, site, step))
    assert got.dtype == np.uint64 and np.array_equal(got, want)


@pytest.mark.parametrize("rows", [None, (2, 9)])
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_dropout_masks_are_keep_masks_bit_for_bit(gpu, rows, dt):
    cp, xp, fused = gpu
    strict = get_backend("strict")
    x = np.random.default_rng(3).normal(size=(6, 37)).astype(dt)
    keep = strict.to_host(RandomStream(seed=11, site=3, counter=5, rows=rows).keep_mask(strict, x.shape, 0.3))
    want = x * (keep.astype(dt) * dt(1 / (1 - 0.3)))
    y, bw = fused.dropout(xp, cp.asarray(x), 0.3, 11, 3, 5, rows)
    assert np.array_equal(cp.asnumpy(y), want) and np.array_equal(cp.asnumpy(bw(cp.asarray(x))[0]), want)


@pytest.mark.parametrize("clip", [None, 0.5, 100.0])
def test_adam_update_with_the_clip_folded_in(gpu, clip):
    cp, xp, fused = gpu
    rng = np.random.default_rng(4)
    p, g, m, v = (rng.normal(size=1000).astype(np.float32) for _ in range(4))
    v = np.abs(v)
    norm = np.float32(np.sqrt((g.astype(np.float64) ** 2).sum()))
    dev = [cp.asarray(a) for a in (p, g, m, v)]
    fused.adam_step(*dev, 1e-2, 0.9, 0.99, 1e-8, 0.1, 3, True, norm=cp.asarray(np.array([norm])),
                    max_norm=clip or 0.0)
    gs = g * (clip / (norm + 1e-6) if clip and norm > clip else 1.0)
    m2, v2 = 0.9 * m + 0.1 * gs, 0.99 * v + 0.01 * gs * gs
    p2 = p * (1 - 1e-2 * 0.1) - (1e-2 / (1 - 0.9 ** 3)) * m2 / (np.sqrt(v2) / np.sqrt(1 - 0.99 ** 3) + 1e-8)
    for got, want in zip(dev, (p2, g, m2, v2)):
        np.testing.assert_allclose(cp.asnumpy(got), want, rtol=1e-5, atol=1e-6)


def test_a_kernel_refuses_arrays_of_another_device(gpu):
    cp, xp, fused = gpu
    with sim.Device(1):
        x1 = cp.asarray(np.ones(4, dtype=np.float32))
    with pytest.raises(sim.CrossDeviceError):
        fused.gelu(xp, x1)  # launched on device 0, the current one


def test_a_rank_on_gpu_1_never_touches_gpu_0(isolated_backends, monkeypatch, tmp_path):
    """cuda:1 is made current once, before the probe; no cudaSetDevice(0) ever (a context on GPU 0 for
    every rank otherwise), and a training step enters no device context at all."""
    from tinyllm import Trainer, TrainConfig

    monkeypatch.setenv("TINYLLM_CUDA_SIM", "2")
    select.forget("cuda:1")
    sim.reset()
    seen = {}

    def rank():
        b = get_backend("cuda:1", fallback=False)
        t = Trainer(TrainConfig(device="cuda:1", n_layer=1, n_head=2, n_embd=16, block_size=8, batch_size=2,
                                steps=3, dropout=0.1, samples=0, out=str(tmp_path / "r1")), verbose=False)
        t.train_step()
        before = sim.COUNTS["contexts"]
        t.train_step()
        seen.update(backend=b, contexts=sim.COUNTS["contexts"] - before,
                    devices={d for who, d in sim.SET_DEVICE if who == "rank1"})

    th = threading.Thread(target=rank, name="rank1")
    th.start()
    th.join()
    assert isinstance(seen["backend"], CUDABackend)
    assert seen["devices"] == {1} and seen["contexts"] == 0
    assert set(sim.ALLOCATED) == {1}


def test_a_gpu_baby_step_launches_within_the_budget(isolated_backends, monkeypatch):
    monkeypatch.setenv("TINYLLM_CUDA_SIM", "1")
    sys.path.insert(0, str(ROOT / "scripts" / "bench"))
    try:
        import launches
    finally:
        sys.path.pop(0)
    fused = launches.count(batch=2, block=8, dropout=0.2)
    unfused = launches.count(batch=2, block=8, dropout=0.2, fused=False)
    assert fused["launches"] <= 400 < unfused["launches"], (fused, unfused)
    assert fused["contexts"] == 0 and fused["d2h"] == 0 and fused["h2d"] == 1  # the batch's offsets only


def _requirements(extras) -> list:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    opt = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    return [r for e in extras for r in opt[e]]


@pytest.mark.parametrize("extras", [("test", "cuda-dev"), ("cuda12", "test"), ("cuda13", "test"),
                                    ("cuda12", "test", "cuda-dev")])
def test_no_install_the_docs_give_brings_two_cupy_wheels(extras):
    """cupy-cuda12x and cupy-cuda13x both install the `cupy` package: one would overwrite the other."""
    import re

    wheels = {re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower() for r in _requirements(extras)}
    assert len({w for w in wheels if w.startswith("cupy")}) <= 1, wheels


def test_the_kernel_sources_ship_with_the_package():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["backends"]
    shipped = {p.name for pat in data for p in (ROOT / "backends").glob(pat)}
    assert {f"{f}.cu" for f in kernels.FAMILIES} | {"common.cuh", "cpu_shim.h"} <= shipped


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_segment_add_is_a_deterministic_scatter_add(gpu, dt):
    """The embedding's backward: duplicate rows summed in sorted order, the same bits every call."""
    cp, xp, fused = gpu
    rng = np.random.default_rng(5)
    idx, vals = rng.integers(0, 7, 300), rng.normal(size=(300, 3, 2)).astype(dt)
    base = rng.normal(size=(7, 3, 2)).astype(dt)
    want = base.astype(np.float64)
    np.add.at(want, idx, vals.astype(np.float64))
    runs = [cp.asnumpy(fused.segment_add(xp, cp.asarray(base), cp.asarray(idx), cp.asarray(vals))) for _ in range(2)]
    np.testing.assert_allclose(runs[0], want, rtol=TOL[dt] * 10, atol=TOL[dt] * 10)
    assert np.array_equal(runs[0], runs[1])

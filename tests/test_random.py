"""The on-device generator (tinyllm/random.py): Philox-4x32-10's published answers, the same bits on
every backend, and statistics: mean, variance, and no correlation between neighbours, steps or sites."""
import numpy as np
import pytest

from backends import get_backend
from tinyllm import Tensor
from tinyllm import ops as F
from tinyllm.random import RandomStream, philox4x32, random_words

# Random123's kat_vectors: counter (4 words), key (2 words) -> output (4 words)
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("counter, key, want", KAT)
def test_known_answers(backend, counter, key, want):
    assert philox4x32(counter, key) == want  # Python ints
    words = [backend.from_host([c], backend.word_dtype) for c in counter]  # the same words as device arrays
    got = philox4x32(words, key, halves=backend.word_dtype != "uint64")  # 16-bit halves where words are int64
    assert [int(backend.to_host(w)[0]) for w in got] == list(want)
    if backend.word_dtype == "uint64":  # the halves give the same bits there too
        halves = philox4x32(words, key, halves=True)
        assert [int(backend.to_host(w)[0]) for w in halves] == list(want)
    assert all(w.dtype == backend.dtype(backend.word_dtype) for w in got)  # uint64 (int64 on torch)


def test_same_bits_on_every_backend(backend):
    cpu = get_backend("cpu")
    # cpu runs the fused kernel (backends/cpu/philox.py, in chunks of 2**14 counters), strict the standard ops
    for n, seed, site, step in [(1, 0, 0, 0), (7, 3, 5, 1), (1001, 2**40 + 17, 2**31 - 1, 2**33 + 5),
                                (4 * 2**15 + 3, 8, 9, 10)]:
        here = backend.to_host(random_words(backend, n, seed, site, step))
        np.testing.assert_array_equal(here, cpu.to_host(random_words(cpu, n, seed, site, step)))
        assert here.max() < 2**32  # 32-bit words: nothing overflowed into the high half
    for dtype in ("float32", "float64"):
        a = backend.to_host(RandomStream(9, 2, 4).uniform(backend, (3, 5), dtype))
        np.testing.assert_array_equal(a, cpu.to_host(RandomStream(9, 2, 4).uniform(cpu, (3, 5), dtype)))
        assert str(a.dtype) == dtype and a.shape == (3, 5)
    m = backend.to_host(RandomStream(1, 7, 3).keep_mask(backend, (4, 9), 0.3))
    np.testing.assert_array_equal(m, cpu.to_host(RandomStream(1, 7, 3).keep_mask(cpu, (4, 9), 0.3)))


N = 200_000


def _corr(a, b) -> float:
    return float(np.corrcoef(a, b)[0, 1])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_uniform_statistics(dtype):
    cpu = get_backend("cpu")
    u = cpu.to_host(RandomStream(seed=11, site=3, counter=5).uniform(cpu, (N,), dtype)).astype(np.float64)
    sd = 4 / np.sqrt(N)  # four standard errors of a correlation
    assert 0.0 <= u.min() and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 4 * np.sqrt(1 / 12 / N)
    assert abs(u.var() - 1 / 12) < 4 * np.sqrt(1 / 180 / N)  # var of (u - 1/2)^2 is 1/180
    assert abs(_corr(u[:-1], u[1:])) < sd  # neighbouring elements
    assert abs(_corr(u[: N // 4], u[N // 4: N // 2])) < 4 / np.sqrt(N // 4)  # the 4 words of one counter
    nxt = cpu.to_host(RandomStream(seed=11, site=3, counter=6).uniform(cpu, (N,), dtype))
    assert abs(_corr(u, nxt)) < sd  # the next step
    other = cpu.to_host(RandomStream(seed=11, site=4, counter=5).uniform(cpu, (N,), dtype))
    assert abs(_corr(u, other)) < sd  # another call site
    assert np.unique(u).size > 0.99 * N  # no short cycles


def test_keep_mask_rate_and_independence():
    cpu = get_backend("cpu")
    for p in (0.1, 0.5, 0.9):
        k = cpu.to_host(RandomStream(seed=2, site=9).keep_mask(cpu, (N,), p)).astype(np.float64)
        assert abs(k.mean() - (1 - p)) < 4 * np.sqrt(p * (1 - p) / N)
        assert abs(_corr(k[:-1], k[1:])) < 4 / np.sqrt(N)


def test_each_draw_advances_the_counter_and_the_step_decides():
    cpu = get_backend("cpu")
    s = RandomStream(seed=5, site=1)
    a, b = (cpu.to_host(s.uniform(cpu, (64,))) for _ in range(2))
    assert s.counter == 2 and not np.array_equal(a, b)
    again = RandomStream(seed=5, site=1, counter=1)  # draw number 1, made afresh (as after a resume)
    np.testing.assert_array_equal(cpu.to_host(again.uniform(cpu, (64,))), b)


def test_dropout_masks_are_the_same_on_every_backend(backend):
    cpu = get_backend("cpu")
    ones = np.ones((6, 40), np.float32)
    here = Tensor(ones, device=backend)
    y = backend.to_host(F.dropout(here, 0.25, RandomStream(seed=3, site=8, counter=2)).data)
    ref = cpu.to_host(F.dropout(Tensor(ones, device=cpu), 0.25, RandomStream(seed=3, site=8, counter=2)).data)
    np.testing.assert_array_equal(y, ref)
    assert set(np.unique(y).tolist()) == {0.0, np.float32(1 / 0.75)}


def test_a_ranks_rows_of_a_mask_are_that_slice_of_the_whole_batchs_mask(backend):
    """Data-parallel dropout: rows (first, total) give those rows of the whole batch's mask, so ranks draw
    distinct masks that together are one process's."""
    shape = (5, 3, 4)  # (B, T, C)
    whole = backend.to_host(RandomStream(seed=7, site=3, counter=2).keep_mask(backend, shape, 0.5))
    parts = [backend.to_host(RandomStream(seed=7, site=3, counter=2, rows=(a, 5)).keep_mask(backend, (b - a, 3, 4), 0.5))
             for a, b in ((0, 2), (2, 5))]
    assert np.array_equal(np.concatenate(parts), whole)
    assert not np.array_equal(parts[0], parts[1][:2])

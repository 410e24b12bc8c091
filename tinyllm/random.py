"""Random numbers made on the device: Philox-4x32-10 written with Array API integer ops.

A counter-based generator (Salmon et al., "Parallel random numbers: as easy as
1, 2, 3", SC 2011) has no state to carry: the numbers are a pure function of a
key (seed, call site) and a counter (element index, step). Dropout masks and
sampling noise are therefore made where they are used, with nothing copied from
the host, and resuming a run exactly needs only the step.

The standard leaves integer overflow unspecified, so nothing here wraps around:
words are 32-bit values held in uint64 (int64 on torch, whose uint64 cannot
shift), and a 32x32-bit product is made from 16-bit halves of one factor, whose
partial products (< 2**48) are exact in either. Integer ops are exact
everywhere, so the bits are identical on NumPy, array-api-strict, CuPy and
torch; uniform floats keep 24 (float32) or 53 (float64) of those bits, so they are
identical too, and a dropout mask is an integer comparison.

Python ints and arrays share the operators used below (*, >>, &, ^), so words
that do not depend on the element index stay Python ints until mixed in.

The global generator (`manual_seed`, initially seed 0, as PyTorch's is fixed at
start) serves what is made without an explicit generator: a layer built without
an rng draws its weights from the next seed, a Dropout layer without one its
stream, and `dropout(x, p)` without a stream the global stream. So hand-built
layers differ from one another, and a program repeats run to run.
"""
from __future__ import annotations

import random as _host_random
from dataclasses import dataclass

_M0, _M1 = 0xD2511F53, 0xCD9E8D57  # Philox-4x32 multipliers
_W0, _W1 = 0x9E3779B9, 0xBB67AE85  # Weyl key increments (golden ratio, sqrt(3) - 1)
_MASK = 0xFFFFFFFF
ROUNDS = 10


def _mulhilo(a, m: int, halves: bool = False):
    """(high, low) 32-bit words of a * m, for a < 2**32 (an int, or an int64 or uint64 array).

    The product is < 2**64: exact in uint64. With halves, a is split into 16-bit halves so that no
    product or sum reaches 2**49: exact in int64 too (a backend whose uint64 lacks shifts, sums or
    comparisons, torch's, makes int64 words). The same bits either way."""
    if not halves or isinstance(a, int):
        p = a * m
        return p >> 32, p & _MASK
    hi, lo = (a >> 16) * m, (a & 0xFFFF) * m  # a * m = hi * 2**16 + lo, each < 2**48
    return (hi + (lo >> 16)) >> 16, (lo + ((hi & 0xFFFF) << 16)) & _MASK


def philox4x32(counter, key, rounds: int = ROUNDS, halves: bool = False) -> tuple:
    """Philox-4x32-R: 4 counter words and 2 key words (ints, or arrays of 32-bit values: uint64, or
    int64 with halves=True) -> 4 words."""
    x0, x1, x2, x3 = counter
    k0, k1 = key
    for r in range(rounds):
        if r:
            k0, k1 = (k0 + _W0) & _MASK, (k1 + _W1) & _MASK
        hi0, lo0 = _mulhilo(x0, _M0, halves)
        hi1, lo1 = _mulhilo(x2, _M1, halves)
        x0, x1, x2, x3 = hi1 ^ x1 ^ k0, lo1, hi0 ^ x3 ^ k1, lo0
    return x0, x1, x2, x3


def random_words(backend, n: int, seed: int, site: int, step: int):
    """n independent 32-bit random words (an array of shape (n,), backend.word_dtype) on backend's device.

    Counter word 0 is the element group (n / 4 groups, 4 words each), word 1 the
    seed's high half, words 2-3 the step; the key is (seed's low half, call site).
    """
    fused = getattr(backend, "philox_words", None)  # a backend's faster kernel for the same words
    if fused is not None:
        return fused(n, seed, site, step)
    xp = backend.xp
    groups = -(-n // 4)
    with backend.activate():
        i = xp.arange(groups, dtype=backend.dtype(backend.word_dtype), device=backend.device)
        counter = (i, (seed >> 32) & _MASK, step & _MASK, (step >> 32) & _MASK)
        words = philox4x32(counter, (seed & _MASK, site & _MASK), halves=backend.word_dtype != "uint64")
        out = xp.concat(words) if n > groups else words[0]  # (4 * groups,): word j of group g at j * groups + g
        return out[:n]


@dataclass
class RandomStream:
    """The random numbers of one call site: draw number `counter` of (seed, site).

    Each draw advances `counter` by one. A training loop sets it to the step
    before each step, so the numbers of step N never depend on what ran before.
    `rows` = (first, total): the arrays masked are rows first..first+B-1 of a
    batch of `total` rows (one rank's share in data-parallel training), and a
    mask is that slice of the whole batch's mask: the same masks at any number
    of ranks, different rows on each.
    """

    seed: int = 0
    site: int = 0
    counter: int = 0
    rows: tuple | None = None

    @classmethod
    def fresh(cls, site: int = 0) -> "RandomStream":
        """A stream with an unpredictable seed (drawn from the host's entropy)."""
        return cls(seed=_host_random.getrandbits(64), site=site)

    def _words(self, backend, n: int):
        w = random_words(backend, n, self.seed, self.site, self.counter)
        self.counter += 1
        return w

    def uniform(self, backend, shape, dtype: str = "float32"):
        """Uniform floats in [0, 1): 24 random bits for float32, 53 for float64."""
        xp = backend.xp
        n = 1
        for s in shape:
            n *= s
        with backend.activate():
            if dtype == "float64":
                w = self._words(backend, 2 * n)
                bits = ((w[:n] >> 5) << 26) | (w[n:] >> 6)  # 27 + 26 = 53 bits
                u = xp.astype(bits, xp.float64) * (1.0 / 2.0 ** 53)
            elif dtype == "float32":
                u = xp.astype(self._words(backend, n) >> 8, xp.float32) * (1.0 / 2.0 ** 24)
            else:
                raise ValueError(f"uniform draws float32 or float64, not {dtype!r}")
            return xp.reshape(u, tuple(shape))

    def keep_mask(self, backend, shape, p: float):
        """A bool array, True with probability 1 - p (exactly: words >= round(p * 2**32))."""
        xp = backend.xp
        n = 1
        for s in shape:
            n *= s
        threshold = min(round(p * 2.0 ** 32), _MASK)
        with backend.activate():
            if self.rows is None:
                words = self._words(backend, n)
            else:  # this rank's rows of the whole batch's words
                first, total = self.rows
                inner = n // shape[0] if shape[0] else 0
                words = self._words(backend, total * inner)[first * inner:first * inner + n]
            return xp.reshape(words >= threshold, tuple(shape))


GLOBAL_SITE = 0x61B7C0  # the global stream's call-site word (dropout sites are < 2**31, sampling's 0x5A3D1E)
_global = {"seed": 0, "draws": 0, "stream": RandomStream(seed=0, site=GLOBAL_SITE)}


def manual_seed(seed: int) -> None:
    """Seed the global generator: the weights of layers built without an rng, the masks of Dropout
    layers built without one and of dropout(x, p) called without a stream follow from it."""
    if type(seed) is not int or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    _global.update(seed=seed, draws=0, stream=RandomStream(seed=seed, site=GLOBAL_SITE))


def next_seed() -> int:
    """A new 63-bit seed from the global generator (each call gives another)."""
    seed, n = _global["seed"], _global["draws"]
    _global["draws"] = n + 1
    w = philox4x32((n & _MASK, (n >> 32) & _MASK, 0, 0), (seed & _MASK, (seed >> 32) & _MASK))
    return ((w[0] << 32) | w[1]) >> 1


def global_stream() -> RandomStream:
    """The stream dropout(x, p) draws from when given none (each draw advances it)."""
    return _global["stream"]

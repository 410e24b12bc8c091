"""Philox-4x32-10 in NumPy, fused for the CPU: the same words as tinyllm/random.py's
standard-only version (the tests compare them bit for bit), faster (docs/speed.md).

The reference makes a new array per operation over all n/4 counters (about a
hundred passes through memory for a dropout mask); here the counters go in
chunks that stay in the CPU cache, every operation writes into a buffer
(`out=`), and the 32x32 -> 64-bit products are split by viewing each uint64 as
two uint32 words instead of shifting and masking.
"""
from __future__ import annotations

import sys

import numpy as np

M0, M1 = 0xD2511F53, 0xCD9E8D57
W0, W1 = 0x9E3779B9, 0xBB67AE85
MASK = 0xFFFFFFFF
CHUNK = 1 << 14  # counters per chunk: 10 uint32 / uint64 buffers of 16K stay in L2
_LO, _HI = (0, 1) if sys.byteorder == "little" else (1, 0)


def philox_words(n: int, seed: int, site: int, step: int, rounds: int = 10) -> np.ndarray:
    """n 32-bit words (uint64) laid out as tinyllm.random.random_words lays them out."""
    groups = -(-n // 4)
    out = np.empty((4, groups), dtype=np.uint64)  # word j of group g at [j, g]
    key0 = [(seed & MASK)]
    key1 = [(site & MASK)]
    for _ in range(rounds - 1):
        key0.append((key0[-1] + W0) & MASK)
        key1.append((key1[-1] + W1) & MASK)
    c1, c2, c3 = (seed >> 32) & MASK, step & MASK, (step >> 32) & MASK
    x = np.empty((4, CHUNK), dtype=np.uint32)
    p = np.empty((2, CHUNK), dtype=np.uint64)
    for start in range(0, groups, CHUNK):
        g = min(CHUNK, groups - start)
        x0, x1, x2, x3 = (x[i, :g] for i in range(4))
        p0, p1 = p[0, :g], p[1, :g]
        x0[:] = np.arange(start, start + g, dtype=np.uint32)
        x1.fill(c1)
        x2.fill(c2)
        x3.fill(c3)
        h0, l0 = p0.view(np.uint32)[_HI::2], p0.view(np.uint32)[_LO::2]
        h1, l1 = p1.view(np.uint32)[_HI::2], p1.view(np.uint32)[_LO::2]
        for r in range(rounds):
            np.multiply(x0, np.uint64(M0), out=p0, dtype=np.uint64)
            np.multiply(x2, np.uint64(M1), out=p1, dtype=np.uint64)
            np.bitwise_xor(h1, x1, out=x0)  # x0 = hi(M1 x2) ^ x1 ^ k0
            x0 ^= np.uint32(key0[r])
            np.bitwise_xor(h0, x3, out=x2)  # x2 = hi(M0 x0) ^ x3 ^ k1
            x2 ^= np.uint32(key1[r])
            x1[:] = l1
            x3[:] = l0
        for j, w in enumerate((x0, x1, x2, x3)):
            out[j, start:start + g] = w
    return out.reshape(-1)[:n]

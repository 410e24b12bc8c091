"""GELU (tanh form) in one compiled pass each way, around its gate s = (1 + tanh(u)) / 2.

numba's LLVM has no vector tanh here (no SVML), and a call per element does not vectorize, so
float32's gate uses a rational tanh that does: the odd 13/6 form Eigen uses, within 4e-7 of
float64's gate past the clamp (tests/test_fast_paths.py). float64 (the gradient checks) keeps
math.tanh. The backward computes the gate again from x rather than keeping it: one
activation-sized array less per GELU, at the same step time (docs/speed.md).
"""
import math

import numpy as np
from numba.core import types
from numba.extending import overload

from .compiler import loop
from .constants import GELU_A, GELU_C

LOOPS = ("gelu_forward", "gelu_backward")
# tanh(x) ~ x P(x^2) / Q(x^2) on [-TANH_CLAMP, TANH_CLAMP] (Eigen's float tanh), +-1 past it
TANH_CLAMP = 7.90531110763549805
_P = (4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05, 5.12229709037114e-08,
      -8.60467152213735e-11, 2.00018790482477e-13, -2.76076847742355e-16)
_Q = (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04, 1.19825839466702e-06)
p0, p1, p2, p3, p4, p5, p6 = (np.float32(c) for c in _P)
q0, q1, q2, q3 = (np.float32(c) for c in _Q)
clamp = np.float32(TANH_CLAMP)
c1, c3 = np.float32(GELU_C), np.float32(GELU_C * GELU_A)


def gelu_gate(x):
    """s = (1 + tanh(c (x + a x^3))) / 2: float32 by the rational tanh (below), float64 by math.tanh."""
    return 0.5 + 0.5 * math.tanh(GELU_C * (x + GELU_A * x * x * x))


@overload(gelu_gate, inline="always")
def _gelu_gate_impl(x):
    if x != types.float32:
        return lambda x: 0.5 + 0.5 * math.tanh(GELU_C * (x + GELU_A * x * x * x))

    def gate32(x):
        u = min(max(x * (c1 + c3 * x * x), -clamp), clamp)
        u2 = u * u
        p = ((((((p6 * u2 + p5) * u2 + p4) * u2 + p3) * u2 + p2) * u2 + p1) * u2 + p0) * u
        q = ((q3 * u2 + q2) * u2 + q1) * u2 + q0
        return np.float32(0.5) + np.float32(0.5) * (p / q)
    return gate32


@loop
def gelu_forward(x, out):
    """out = GELU(x) over flat arrays."""
    for i in range(x.size):
        out[i] = x[i] * gelu_gate(x[i])


@loop
def gelu_backward(g, x, dx, k1, k3, one):
    """dx = g (s + x (k1 + k3 x^2) s (1 - s)), k1 = 2 c, k3 = 6 c a: the gate computed again from x."""
    for i in range(x.size):
        xi = x[i]
        si = gelu_gate(xi)
        dx[i] = g[i] * (si + xi * (k1 + k3 * xi * xi) * si * (one - si))


def compile_float32():
    """Compile (or load from the cache) the float32 versions, what training runs."""
    f = np.ones(6, dtype=np.float32)
    one = np.float32(1.0)
    gelu_forward(f, f.copy())
    gelu_backward(f, f, f.copy(), one, one, one)

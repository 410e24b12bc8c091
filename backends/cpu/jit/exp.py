"""Attention's exp: a float32 exp that vectorizes (numba's LLVM has no vector exp here, and a call
per element does not vectorize), and exp_array to test it by.

float32: Cephes' expf, a degree-6 polynomial on [-ln2/2, ln2/2] times 2^n put into the exponent
bits, within 2e-7 relative error over [-87, 88] (tested); inputs are clamped there (the scores are
shifted so that the largest is near 0, and the sums they enter are >= 1); NaN stays NaN. float64
(the gradient checks) keeps math.exp.
"""
import math

import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic, overload

from .compiler import loop

LOOPS = ("exp_array",)
lo, hi = np.float32(-87.0), np.float32(88.0)
log2e, magic = np.float32(1.4426950408889634), np.float32(12582912.0)  # 1.5 * 2^23
ln2_hi, ln2_lo = np.float32(0.693359375), np.float32(-2.12194440e-4)
e1, e2, e3, e4, e5, e6 = (np.float32(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
                                                  4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1))
one32 = np.float32(1.0)


@intrinsic
def _round(typingctx, y):
    """y rounded to an integer (float32): (y + 1.5 * 2^23) - 1.5 * 2^23 in strict IEEE adds, which
    the loops' fast-math (reassociation) may not fold away."""
    def codegen(context, builder, signature, args):
        c = ir.Constant(ir.FloatType(), float(magic))
        return builder.fsub(builder.fadd(args[0], c), c)
    return types.float32(types.float32), codegen


@intrinsic
def _pow2(typingctx, n):
    """2^n for an integer-valued float32 n in [-126, 127]: (n + 127) << 23 as the float's bits, in
    32-bit integers (numba's own int32 arithmetic widens to int64 and back: two more conversions)."""
    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        e = builder.add(builder.fptosi(args[0], i32), ir.Constant(i32, 127))
        return builder.bitcast(builder.shl(e, ir.Constant(i32, 23)), ir.FloatType())
    return types.float32(types.float32), codegen


def exp_(x):
    return math.exp(x)


@overload(exp_)
def _exp_impl(x):
    if x != types.float32:
        return lambda x: math.exp(x)

    def exp32(x):
        x = min(max(x, lo), hi)
        fn = _round(x * log2e)  # n
        r = x - fn * ln2_hi - fn * ln2_lo  # x - n ln2 in two parts (Cody-Waite)
        p = (((((e1 * r + e2) * r + e3) * r + e4) * r + e5) * r + e6) * (r * r) + r + one32
        return p * _pow2(fn)  # * 2^n
    return exp32


@loop
def exp_array(x, out):
    """out = exp(x) over flat arrays, by the kernels' exp (tests hold it to np.exp)."""
    for i in range(x.size):
        out[i] = exp_(x[i])


def compile_float32():
    """Compile (or load from the cache) the float32 version."""
    a = np.ones(4, dtype=np.float32)
    exp_array(a, a.copy())

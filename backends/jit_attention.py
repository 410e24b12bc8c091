"""Compiled loops (numba) for attention's passes between its matmuls.

backends/fast_cpu.py's attention keeps its matmuls on BLAS and hands the
rest to these, when numba is there (backends/jit_cpu.py builds them with the
other loops): the layouts the matmuls want (q scaled with its shift as an
extra column, k transposed with a row of ones, ...) in one pass instead of a
multiply, two vecdots and two copies; and softmax's mask + exp + row sum in
one pass over a block of scores instead of three (the hidden keys of a causal
mask are written as zeros, never exponentiated).

Why: at T=512 (cpu-small, one thread) these passes took 42 of the 114 ms of
an attention call's forward and backward, the matmuls the rest.

exp: numba's LLVM has no vector exp here (no SVML), and a call per element
does not vectorize. So float32 uses Cephes' expf: a degree-6 polynomial on
[-ln2/2, ln2/2] and 2^n put into the exponent bits (n rounded by adding
and taking away 1.5 * 2^23, the bits shifted in 32-bit integers, a bitcast:
LLVM vectorizes it like the rest): within 2e-7 relative error of exp over [-87, 88]
(tested), at 0.47-0.50 ns an element against NumPy's 0.56-0.69 in the same
run (0.79-0.89 when n went through numba's int32 arithmetic, which widens to
int64 and back). Inputs are clamped to [-87, 88]
(exp(-87) ~ 1.6e-38 stands in for 0, exp(88) for inf: these scores are
shifted so that the largest is near 0, and the sums they enter are >= 1);
NaN stays NaN. float64 (the gradient checks) keeps math.exp.
"""
from __future__ import annotations

import math


def build(jit):  # pragma: no cover - compiled; tests run them through fast_cpu's attention
    import numpy as np
    from llvmlite import ir
    from numba.core import types
    from numba.extending import intrinsic, overload

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

    @jit
    def exp_array(x, out):
        """out = exp(x) over flat arrays, by the kernels' exp (tests hold it to np.exp)."""
        for i in range(x.size):
            out[i] = exp_(x[i])

    @jit
    def att_prep(q, k, scale, qa, kat, shift, zero):
        """qa = [q * scale, -shift], kat = [k^T; 1], shift (G, Tq) = |q_i| scale max_j |k_j|, a bound
        on every score of row i (Cauchy-Schwarz); returns the largest. q (G, Tq, hs), k (G, Tk, hs)."""
        g_, tq, hs = q.shape
        tk = k.shape[1]
        top = zero
        for p in range(g_):
            kmax = zero
            for j in range(tk):
                s2 = zero
                for d in range(hs):
                    s2 += k[p, j, d] * k[p, j, d]
                kmax = max(kmax, s2)
            for d in range(hs):  # along kat's rows: contiguous stores
                for j in range(tk):
                    kat[p, d, j] = k[p, j, d]
            for j in range(tk):
                kat[p, hs, j] = 1
            for i in range(tq):
                s2 = zero
                for d in range(hs):
                    x = q[p, i, d] * scale
                    qa[p, i, d] = x
                    s2 += x * x
                b = math.sqrt(s2 * kmax)
                qa[p, i, hs] = -b
                shift[p, i] = b
                top = max(top, b)
        return top

    @jit
    def att_softmax(s, first_hidden, shifted, shift, i0, total, zero):
        """Scores s (G, bq, n) of queries i0.. in place -> exp(s - row shift), 0 where hidden (from
        column first_hidden + i of row i on; >= n: none), total (G, bq) their row sums.
        shifted: the shift rode in the matmul already; else take each row's max and store it in
        shift[:, i0 + i]. Every kernel here takes 0 (and 1) in the arrays' dtype from the caller:
        one made from an element (s[p, i, 0] * 0) kept the exp loop from vectorizing, 7x slower."""
        g_, bq, n = s.shape
        for p in range(g_):
            for i in range(bq):
                h = min(n, max(0, first_hidden + i))
                acc = zero
                if shifted:
                    for j in range(h):
                        e = exp_(s[p, i, j])
                        s[p, i, j] = e
                        acc += e
                elif h > 0:
                    m = s[p, i, 0]
                    for j in range(1, h):
                        m = max(m, s[p, i, j])
                    shift[p, i0 + i] = m
                    for j in range(h):
                        e = exp_(s[p, i, j] - shift[p, i0 + i])
                        s[p, i, j] = e
                        acc += e
                hidden = s[p, i, h:]
                for j in range(hidden.size):
                    hidden[j] = zero
                total[p, i] = acc

    @jit
    def att_finish(out, i0, total, shift, lse, one):
        """out[:, i0 + i] /= total[:, i], lse[:, i0 + i] = log(total) + shift: the block's log-sum-exp."""
        g_, bq = total.shape
        hs = out.shape[2]
        for p in range(g_):
            for i in range(bq):
                t = total[p, i]
                inv = one / t
                for d in range(hs):
                    out[p, i0 + i, d] *= inv
                lse[p, i0 + i] = math.log(t) + shift[p, i0 + i]

    @jit
    def att_bwd_prep(q, k, v, g, out, lse, scale, qs, ka, va, qat, gat, zero):
        """The backward's operands in one pass: qs = q scale, ka = [k, 1], va = [v, 1],
        qat = [qs^T; -lse], gat = [g^T; -rowsum(P dP)] with rowsum(P dP) = g . out per query.
        The transposes run along their output rows (contiguous stores): 3x faster than along the input's."""
        g_, tq, hs = q.shape
        tk = k.shape[1]
        for p in range(g_):
            for j in range(tk):
                for d in range(hs):
                    ka[p, j, d] = k[p, j, d]
                    va[p, j, d] = v[p, j, d]
                ka[p, j, hs] = 1
                va[p, j, hs] = 1
            for i in range(tq):
                dd = zero
                for d in range(hs):
                    qs[p, i, d] = q[p, i, d] * scale
                    dd += g[p, i, d] * out[p, i, d]
                qat[p, hs, i] = -lse[p, i]
                gat[p, hs, i] = -dd
            for d in range(hs):
                for i in range(tq):
                    qat[p, d, i] = qs[p, i, d]
                    gat[p, d, i] = g[p, i, d]

    @jit
    def att_whole_bwd_prep(g, out, inv, v, scale, gi, gia, vat, zero):
        """The short-context backward's operands in one pass: gi = g inv (inv = 1 / row sums, (G, Tq)),
        gia = [gi scale, -scale inv rowsum(P dP)] with rowsum(P dP) = g . out, vat = [v^T; 1]."""
        g_, tq, hs = g.shape
        tk = v.shape[1]
        for p in range(g_):
            for i in range(tq):
                iv = inv[p, i]
                dd = zero
                for d in range(hs):
                    x = g[p, i, d]
                    dd += x * out[p, i, d]
                    x *= iv
                    gi[p, i, d] = x
                    gia[p, i, d] = x * scale
                gia[p, i, hs] = -dd * iv * scale
            for d in range(hs):  # along vat's rows: contiguous stores
                for j in range(tk):
                    vat[p, d, j] = v[p, j, d]
            for j in range(tk):
                vat[p, hs, j] = 1

    @jit
    def att_bwd_exp(pt, first_visible, zero):
        """pt (G, bk, nq) = S^T - lse in place -> P^T: exp, and 0 before column first_visible + j of row j."""
        g_, bk, nq = pt.shape
        for p in range(g_):
            for j in range(bk):
                v0 = min(nq, max(0, first_visible + j))
                for c in range(v0):
                    pt[p, j, c] = zero
                row = pt[p, j, v0:]  # a view: indexing pt from v0 on kept the loop scalar (9x slower)
                for c in range(row.size):
                    row[c] = exp_(row[c])

    # compile (or load) float32 now, as jit_cpu does for its loops
    dt = np.float32
    a = np.ones((1, 2, 2), dtype=dt)
    aug = np.ones((1, 2, 3), dtype=dt)
    augt = np.ones((1, 3, 2), dtype=dt)
    row = np.ones((1, 2), dtype=dt)
    one = dt(1.0)
    exp_array(a.reshape(-1), a.reshape(-1).copy())
    att_prep(a, a, one, aug.copy(), augt.copy(), row.copy(), dt(0.0))
    att_softmax(a.copy(), 1, True, row.copy(), 0, row.copy(), dt(0.0))
    att_softmax(a.copy(), 1, False, row.copy(), 0, row.copy(), dt(0.0))
    att_finish(a.copy(), 0, row, row, row.copy(), one)
    att_bwd_prep(a, a, a, a, a, row, one, a.copy(), aug.copy(), aug.copy(), augt.copy(), augt.copy(), dt(0.0))
    att_whole_bwd_prep(a, a, row, a, one, a.copy(), aug.copy(), augt.copy(), dt(0.0))
    att_bwd_exp(a.copy(), 0, dt(0.0))
    return dict(exp_array=exp_array, att_prep=att_prep, att_softmax=att_softmax, att_finish=att_finish,
                att_bwd_prep=att_bwd_prep, att_whole_bwd_prep=att_whole_bwd_prep, att_bwd_exp=att_bwd_exp)

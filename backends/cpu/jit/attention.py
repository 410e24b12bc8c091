"""Attention's passes between its matmuls, one compiled pass each (attention.py keeps the matmuls on
BLAS): the layouts the matmuls want in one pass instead of a multiply, two vecdots and two copies;
softmax's mask + exp + row sum over a block of scores in one instead of three (hidden keys written
as zeros, never exponentiated). Each takes 0 and 1 in the arrays' dtype from the caller, for the
reason att_softmax gives.
"""
import math

import numpy as np

from .compiler import loop
from .exp import exp_

LOOPS = ("att_prep", "att_softmax", "att_finish", "att_bwd_prep", "att_whole_bwd_prep", "att_bwd_exp")


@loop
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


@loop
def att_softmax(s, first_hidden, shifted, shift, i0, total, zero):
    """Scores s (G, bq, n) of queries i0.. in place -> exp(s - row shift), 0 where hidden (from
    column first_hidden + i of row i on; >= n: none), total (G, bq) their row sums.
    shifted: the shift rode in the matmul already; else take each row's max and store it in
    shift[:, i0 + i]. Every kernel here takes 0 (and 1) in the arrays' dtype from the caller:
    one made from an element (s[p, i, 0] * 0) kept the exp loop from vectorizing."""
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


@loop
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


@loop
def att_bwd_prep(q, k, v, g, out, lse, scale, qs, ka, va, qat, gat, zero):
    """The backward's operands in one pass: qs = q scale, ka = [k, 1], va = [v, 1],
    qat = [qs^T; -lse], gat = [g^T; -rowsum(P dP)] with rowsum(P dP) = g . out per query.
    The transposes run along their output rows (contiguous stores), faster than along the input's."""
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


@loop
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


@loop
def att_bwd_exp(pt, first_visible, zero):
    """pt (G, bk, nq) = S^T - lse in place -> P^T: exp, and 0 before column first_visible + j of row j."""
    g_, bk, nq = pt.shape
    for p in range(g_):
        for j in range(bk):
            v0 = min(nq, max(0, first_visible + j))
            for c in range(v0):
                pt[p, j, c] = zero
            row = pt[p, j, v0:]  # a view: indexing pt from v0 on kept the loop from vectorizing
            for c in range(row.size):
                row[c] = exp_(row[c])


def compile_float32():
    """Compile (or load from the cache) the float32 versions, what training runs."""
    dt = np.float32
    a = np.ones((1, 2, 2), dtype=dt)
    aug = np.ones((1, 2, 3), dtype=dt)
    augt = np.ones((1, 3, 2), dtype=dt)
    row = np.ones((1, 2), dtype=dt)
    one = dt(1.0)
    att_prep(a, a, one, aug.copy(), augt.copy(), row.copy(), dt(0.0))
    att_softmax(a.copy(), 1, True, row.copy(), 0, row.copy(), dt(0.0))
    att_softmax(a.copy(), 1, False, row.copy(), 0, row.copy(), dt(0.0))
    att_finish(a.copy(), 0, row, row, row.copy(), one)
    att_bwd_prep(a, a, a, a, a, row, one, a.copy(), aug.copy(), aug.copy(), augt.copy(), augt.copy(), dt(0.0))
    att_whole_bwd_prep(a, a, row, a, one, a.copy(), aug.copy(), augt.copy(), dt(0.0))
    att_bwd_exp(a.copy(), 0, dt(0.0))

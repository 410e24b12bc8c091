"""Causal scaled-dot-product attention on the CPU: NumpyFast's attention and self_attention.

q, k, v and the output are (B, H, T, hs) arrays of any strides (for self_attention, views into the
fused qkv projection and the (B, T, C) result: no head is copied out whole). The (batch, head) pairs
go in groups gathered into arrays that stay in cache, taken in turn by the policy's threads. Past
one block of context it is flash-style: memory linear in the context, fully masked blocks skipped.
"""
from __future__ import annotations

import numpy as np

from .rows import rowdot, rowmax, rowsum

ATTENTION_BLOCK = 64  # query/key rows per attention block (contexts up to this run unblocked)
SHIFT_BOUND = 40.0  # largest score bound used as softmax's shift (see _score_shift)
GROUP_BYTES = 1 << 20  # the score blocks of a group of (batch, head) pairs held in L2 at once


def attention4(fast, q, k, v, mask, scale, out):
    """softmax(q k^T * scale, masked) v into out. q (B, H, Tq, hs), k and v (B, H, Tk, hs),
    out (B, H, Tq, hs_v), any strides. Returns backward(g, dq, dk, dv), which fills the last
    three (shaped like q, k, v, any strides) from g (shaped like out)."""
    B, H, tq, hs = q.shape
    tk = k.shape[-2]
    part_fn = _attention_whole if tq <= ATTENTION_BLOCK else _attention_blocked
    held = tq * tk if part_fn is _attention_whole else 2 * ATTENTION_BLOCK * tk  # score elements a pair holds
    # one group per thread at least, more when the score blocks of a group would spill from L2; not the
    # kernels' 3 pieces per thread: a group carries ~20 calls, and more groups were slower (docs/speed.md)
    pieces = len(fast.threads.ranges(B * H, B * H * tq * tk, per_thread=1))
    groups = _groups(B, H, max(1, GROUP_BYTES // (held * q.itemsize)), pieces)
    parts = [(i, i + 1) for i in range(len(groups))]  # taken one at a time by whichever thread is free
    backwards = [None] * len(groups)

    def forward(a, b):
        for i in range(a, b):
            gs = groups[i]
            o, write_back = _into(out[gs])
            backwards[i] = part_fn(_gather(q, gs), _gather(k, gs), _gather(v, gs), mask, scale, o, fast.jit)
            write_back()

    fast.threads.run(forward, parts)

    def backward(g, dq, dk, dv):
        def grad(a, b):
            for i in range(a, b):
                gs = groups[i]
                (bq, wq), (bk, wk), (bv, wv) = _into(dq[gs]), _into(dk[gs]), _into(dv[gs])
                backwards[i](*(_gather(x, gs) for x in (q, k, v, out, g)), bq, bk, bv)
                wq(), wk(), wv()

        fast.threads.run(grad, parts)

    return backward


def _groups(B: int, H: int, pairs: int, pieces: int) -> list:
    """(batch slice, head slice) groups of at most `pairs` (batch, head) pairs, and at least
    `pieces` of them where there are enough pairs: whole batch rows when a row's heads fit in a group."""
    pairs = max(1, min(pairs, -(-B * H // max(1, pieces))))
    if pairs >= H:
        rows = pairs // H
        return [(slice(b, min(B, b + rows)), slice(0, H)) for b in range(0, B, rows)]
    return [(slice(b, b + 1), slice(h, min(H, h + pairs))) for b in range(B) for h in range(0, H, pairs)]


def _gather(a, gs):
    """A group's pairs of a (B, H, T, d) array as one contiguous (pairs, T, d) array (a view when
    they lie contiguously already)."""
    return np.ascontiguousarray(a[gs]).reshape((-1,) + a.shape[-2:])


def _into(dst):
    """(buffer, write_back) for a kernel that writes a contiguous (pairs, T, d) array into dst
    (a group of a (B, H, T, d) array): dst itself when contiguous, else a buffer copied in after."""
    shape = (-1,) + dst.shape[-2:]
    if dst.flags.c_contiguous:
        return dst.reshape(shape), _nothing
    buf = np.empty(dst.shape, dtype=dst.dtype)

    def write_back():
        dst[...] = buf

    return buf.reshape(shape), write_back


def _nothing():
    pass


def _mask_out(s, visible):
    """s[..., i, j] = -inf where visible[i, j] is False (visible broadcasts over leading axes)."""
    np.copyto(s, -np.inf, where=~visible)


def _aug(a, col):
    """[a, col] along the last axis, contiguous: (..., T, d) -> (..., T, d + 1)."""
    out = np.empty(a.shape[:-1] + (a.shape[-1] + 1,), dtype=a.dtype)
    out[..., :-1] = a
    out[..., -1:] = col
    return out


def _aug_t(a, row):
    """[a^T; row^T], contiguous: (..., T, d) and row (..., T, 1) or a number -> (..., d + 1, T)."""
    out = np.empty(a.shape[:-2] + (a.shape[-1] + 1, a.shape[-2]), dtype=a.dtype)
    out[..., :-1, :] = np.swapaxes(a, -1, -2)
    out[..., -1:, :] = np.swapaxes(row, -1, -2) if np.ndim(row) else row
    return out


def _score_shift(qs, k):
    """A shift per query row that no score of the row exceeds, or None.

    |q . k| <= |q| max|k| (Cauchy-Schwarz) bounds each row's scores without
    computing them, so softmax needs no row max: while the bound is at most
    SHIFT_BOUND, exp(score - bound) >= exp(-2 SHIFT_BOUND) stays a normal
    float32 and nothing underflows. Past it the kernels take the exact row max.
    """
    bound = np.sqrt(np.vecdot(qs, qs))[..., None]  # (G, Tq, 1)
    bound *= np.sqrt(np.max(np.vecdot(k, k), axis=-1))[..., None, None]
    return bound if float(np.max(bound, initial=0.0)) <= SHIFT_BOUND else None


def _softmax_rows(s, shift):
    """exp(s - shift) in place, shift None: the row max; -> (row sums, the shift used)."""
    if shift is None:
        shift = rowmax(s)
        s -= shift
    np.exp(s, out=s)
    return rowsum(s), shift


def _attention_whole(q, k, v, mask, scale, out, jit=None):
    """Short contexts: the whole (Tq, Tk) matrix of exp(scores - shift), kept for the backward.
    q (G, Tq, hs), k and v (G, Tk, hs) contiguous. Writes the output into `out`; returns
    backward(q, k, v, out, g, dq, dk, dv), which fills dq, dk, dv from the same q, k, v and out.
    Shifts and row scalings ride in the matmuls ([q, -shift] @ [k, 1]^T = q k^T - shift),
    so the (Tq, Tk) matrix is never normalized, subtracted from or reduced.
    With numba (jit), the passes between the matmuls are its loops (jit/attention.py)."""
    tq, tk = q.shape[-2], k.shape[-2]
    if jit is not None:
        qa, kat, shift, shifted = _jit_prep(jit, q, k, scale)
        e = qa @ kat  # (G, Tq, Tk) scores, shifted
        total = np.empty(shift.shape, dtype=q.dtype)  # (G, Tq)
        jit.att_softmax(e, tk - tq + 1 if mask is not None else tk, shifted, shift, 0, total, q.dtype.type(0))
        inv = np.divide(1.0, total, out=total)[..., None]  # (G, Tq, 1)
    else:
        qs = q * scale
        shift = _score_shift(qs, k)
        e = _aug(qs, -shift if shift is not None else 0.0) @ _aug_t(k, 1.0)  # (G, Tq, Tk) shifted scores
        if mask is not None:
            _mask_out(e, mask)
        total, _ = _softmax_rows(e, shift)  # e = P * total
        inv = np.divide(1.0, total, out=total)  # (G, Tq, 1)
    np.matmul(e, v, out=out)
    out *= inv  # (G, Tq, hs)

    def backward(q, k, v, out, g, dq, dk, dv):
        if jit is not None:  # gi = g / total, gia = [gi scale, d] and vat = [v^T; 1] in one pass
            (g_, _, hs), dt = q.shape, q.dtype
            gi, gia, vat = np.empty_like(q), np.empty((g_, tq, hs + 1), dt), np.empty((g_, hs + 1, tk), dt)
            # total holds 1 / the row sums by now (inv is a view of it)
            jit.att_whole_bwd_prep(g, out, total, v, dt.type(scale), gi, gia, vat, dt.type(0))
        else:
            gi = g * inv  # g / total
            d = rowdot(g, out)  # rowsum(P * dP) = g . out per query
            d *= inv
            d *= -scale
            gia, vat = _aug(gi * scale, d), _aug_t(v, 1.0)
        np.matmul(np.swapaxes(e, -1, -2), gi, out=dv)  # P^T g = e^T gi (G, Tk, hs)
        ds = gia @ vat  # (dP - rowsum(P dP)) * scale / total
        ds *= e  # dS * scale
        np.matmul(ds, k, out=dq)
        np.matmul(np.swapaxes(ds, -1, -2), q, out=dk)

    return backward


def _jit_prep(jit, q, k, scale):
    """numba's one pass: qa = [q scale, -shift] (G, Tq, hs + 1), kat = [k^T; 1] (G, hs + 1, Tk),
    shift (G, Tq) and whether it is in qa. When the bound is too large to shift by (see
    _score_shift), qa's shift column is 0 and the softmax takes each row's max instead."""
    g_, tq, hs = q.shape
    qa = np.empty((g_, tq, hs + 1), dtype=q.dtype)
    kat = np.empty((g_, hs + 1, k.shape[-2]), dtype=q.dtype)
    shift = np.empty((g_, tq), dtype=q.dtype)
    top = jit.att_prep(q, k, q.dtype.type(scale), qa, kat, shift, q.dtype.type(0))
    if top <= SHIFT_BOUND:
        return qa, kat, shift, True
    qa[..., -1] = 0.0  # too large (or NaN): exact row maxima instead
    return qa, kat, shift, False


def _attention_blocked(q, k, v, mask, scale, out, jit=None, blk=None):
    """Flash-style: the forward over blocks of queries, the backward over blocks of
    keys, each computing its (blk, Tk) or (blk, Tq) scores afresh; only the
    per-row log-sum-exp is kept. A causal mask skips the blocks it hides whole.
    Every matmul takes contiguous operands, the shifts (softmax's, the backward's
    log-sum-exp and rowsum(P dP)) riding in them as an extra column.
    With numba (jit), the passes between the matmuls are its loops (jit/attention.py).
    Writes into `out`; returns backward(q, k, v, out, g, dq, dk, dv) as _attention_whole does."""
    blk = blk or ATTENTION_BLOCK
    tq, tk = q.shape[-2], k.shape[-2]
    off = tk - tq  # under the mask, query i sees key j when j <= i + off
    if jit is not None:
        qa, kat, shift, shifted = _jit_prep(jit, q, k, scale)
        lse = np.empty(shift.shape, dtype=q.dtype)  # (G, Tq)
    else:
        qs = q * scale  # (G, Tq, hs)
        shift = _score_shift(qs, k)
        qa = _aug(qs, -shift if shift is not None else 0.0)  # (G, Tq, hs + 1)
        kat = _aug_t(k, 1.0)  # (G, hs + 1, Tk)
        lse = np.empty(q.shape[:-1] + (1,), dtype=q.dtype)  # (G, Tq, 1)
    for i0 in range(0, tq, blk):
        i1 = min(tq, i0 + blk)
        kend = tk if mask is None else min(tk, i1 + off)  # keys past kend are hidden from the whole block
        s = qa[..., i0:i1, :] @ kat[..., :kend]  # (G, bq, kend)
        if jit is not None:  # mask + exp + row sums in one pass, then out /= total and lse in another
            total = np.empty(s.shape[:-1], dtype=q.dtype)  # (G, bq)
            jit.att_softmax(s, kend if mask is None else i0 + off + 1, shifted, shift, i0, total, q.dtype.type(0))
            np.matmul(s, v[..., :kend, :], out=out[..., i0:i1, :])
            jit.att_finish(out, i0, total, shift, lse, q.dtype.type(1))
            continue
        c0 = max(0, i0 + off + 1)  # keys before c0 are visible to every query of the block
        if mask is not None and c0 < kend:
            _mask_out(s[..., c0:kend], mask[i0:i1, c0:kend])
        total, m = _softmax_rows(s, None if shift is None else shift[..., i0:i1, :])
        o = np.matmul(s, v[..., :kend, :], out=out[..., i0:i1, :])
        o *= 1.0 / total  # normalize the (bq, hs) output, not the (bq, kend) probabilities
        np.log(total, out=total)
        np.add(total, m, out=lse[..., i0:i1, :])

    def backward(q, k, v, out, g, dq, dk, dv):
        _blocked_backward(q, k, v, out, g, dq, dk, dv, mask, scale, lse, jit, blk)

    return backward


def _blocked_backward(q, k, v, out, g, dq, dk, dv, mask, scale, lse, jit, blk):
    """_attention_blocked's backward over blocks of keys: fills dq, dk, dv; lse from the forward."""
    tq, tk = q.shape[-2], k.shape[-2]
    off = tk - tq  # under the mask, query i sees key j when j <= i + off
    if jit is not None:
        qsb, ka, va, qat, gat = _jit_backward_operands(jit, q, k, v, g, out, lse, scale)
    else:
        qsb = q * scale
        ka, va = _aug(k, 1.0), _aug(v, 1.0)  # (G, Tk, hs + 1)
        qat = _aug_t(qsb, -lse)  # [qs^T; -lse^T] (G, hs + 1, Tq)
        gat = _aug_t(g, -rowdot(g, out))  # [g^T; -rowsum(P * dP)^T]: rowsum(P dP) = g . out
    dq[...] = 0.0
    for j0 in range(0, tk, blk):
        j1 = min(tk, j0 + blk)
        r0 = 0 if mask is None else max(0, j0 - off)  # the first query that sees a key of the block
        if r0 >= tq:
            dk[..., j0:j1, :] = 0.0
            dv[..., j0:j1, :] = 0.0
            continue
        pt = ka[..., j0:j1, :] @ qat[..., r0:]  # S^T - lse (G, bk, nq)
        if jit is not None:  # P^T: exp, and 0 where hidden, in one pass
            jit.att_bwd_exp(pt, -tq if mask is None else j0 - off - r0, q.dtype.type(0))
        else:
            r1 = min(tq, j1 - 1 - off)  # queries from r1 on see the whole block
            if mask is not None and r0 < r1:
                _mask_out(pt[..., :r1 - r0], mask[r0:r1, j0:j1].T)
            np.exp(pt, out=pt)  # P^T
        np.matmul(pt, g[..., r0:, :], out=dv[..., j0:j1, :])
        dst = va[..., j0:j1, :] @ gat[..., r0:]  # dP^T - rowsum(P dP) (G, bk, nq)
        dst *= pt  # dS^T
        np.matmul(dst, qsb[..., r0:, :], out=dk[..., j0:j1, :])
        dq[..., r0:, :] += np.swapaxes(dst, -1, -2) @ k[..., j0:j1, :]  # BLAS takes dS as transposed
    dq *= scale


def _jit_backward_operands(jit, q, k, v, g, out, lse, scale):
    """numba's one pass: qs = q scale, ka = [k, 1], va = [v, 1] (G, Tk, hs + 1), qat = [qs^T; -lse]
    and gat = [g^T; -rowsum(P dP)] (G, hs + 1, Tq)."""
    (g_, tq, hs), tk = q.shape, k.shape[-2]
    qs = np.empty_like(q)
    ka, va = (np.empty((g_, tk, hs + 1), dtype=q.dtype) for _ in range(2))
    qat, gat = (np.empty((g_, hs + 1, tq), dtype=q.dtype) for _ in range(2))
    jit.att_bwd_prep(q, k, v, g, out, lse, q.dtype.type(scale), qs, ka, va, qat, gat, q.dtype.type(0))
    return qs, ka, va, qat, gat

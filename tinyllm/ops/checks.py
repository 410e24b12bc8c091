"""THE table of gradient checks: one or more cases for every registered op.

Each case: the op's name, a function of float64 tensors, and the shapes of
its inputs. `positive` inputs are drawn away from zero (log, sqrt, pow).
The test suite runs every case on every backend (and fails for an op with
no case); `tinyllm gradcheck` runs them for a learner to read.
"""
from dataclasses import dataclass

from .. import ops as F
from ..finite_diff import gradcheck
from ..random import RandomStream
from ..autograd import Tensor


@dataclass
class Case:
    op: str
    fn: object
    shapes: list
    positive: bool = False
    id: str = ""


def _idx(backend, shape, high):
    return backend.rng(7).integers(0, high, shape)


def _mask(backend, shape):
    return backend.rng(3).uniform(shape, dtype="float64") > 0.5


CASES = [
    Case("add", lambda a, b: F.add(a, b), [(3, 4), (3, 4)], id="same"),
    Case("add", lambda a, b: F.add(a, b), [(2, 3, 4), (4,)], id="broadcast"),
    Case("add", lambda a: F.add(2.5, a), [(3, 4)], id="scalar"),
    Case("sub", lambda a, b: F.sub(a, b), [(3, 1), (1, 4)], id="broadcast"),
    Case("sub", lambda a: F.sub(1.0, a), [(3,)], id="rscalar"),
    Case("mul", lambda a, b: F.mul(a, b), [(2, 3), (2, 3)]),
    Case("mul", lambda a, b: F.mul(a, b), [(2, 1, 3), (4, 1)], id="broadcast"),
    Case("div", lambda a, b: F.div(a, b), [(2, 3), (3,)], positive=True),
    Case("div", lambda a: F.div(2.0, a), [(4,)], positive=True, id="rscalar"),
    Case("neg", lambda a: F.neg(a), [(5,)]),
    Case("pow", lambda a: F.pow(a, 3), [(2, 3)], id="int"),
    Case("pow", lambda a: F.pow(a, -0.5), [(2, 3)], positive=True, id="frac"),
    Case("exp", lambda a: F.exp(a), [(2, 3)]),
    Case("log", lambda a: F.log(a), [(2, 3)], positive=True),
    Case("sqrt", lambda a: F.sqrt(a), [(2, 3)], positive=True),
    Case("tanh", lambda a: F.tanh(a), [(2, 3)]),
    Case("sigmoid", lambda a: F.sigmoid(a), [(2, 3)]),
    Case("relu", lambda a: F.relu(a), [(3, 4)]),
    Case("gelu", lambda a: F.gelu(a), [(3, 4)]),
    Case("cast", lambda a: F.cast(a, a.backend.dtype_name(a.dtype)) * 2.0, [(3,)]),
    Case("sum", lambda a: F.sum(a), [(2, 3)], id="all"),
    Case("sum", lambda a: F.sum(a, axis=1, keepdims=True), [(2, 3, 4)], id="keepdims"),
    Case("sum", lambda a: F.sum(a, axis=(0, 2)), [(2, 3, 4)], id="axes"),
    Case("mean", lambda a: F.mean(a, axis=-1), [(2, 3, 4)]),
    Case("mean", lambda a: F.mean(a), [(3, 4)], id="all"),
    Case("max", lambda a: F.max(a, axis=-1), [(3, 5)]),
    Case("max", lambda a: F.max(a, axis=0, keepdims=True), [(4, 3)], id="keepdims"),
    Case("reshape", lambda a: F.reshape(a, (4, 3)) * F.reshape(a, (4, 3)), [(2, 6)]),
    Case("permute", lambda a: F.permute(a, (2, 0, 1)), [(2, 3, 4)]),
    Case("transpose", lambda a: F.transpose(a, 0, 2), [(2, 3, 4)]),
    Case("getitem", lambda a: F.getitem(a, (slice(1, 3), 0)), [(4, 3)]),
    Case("getitem", lambda a: F.getitem(a, (Ellipsis, slice(None, None, 2))), [(2, 5)], id="step"),
    Case("concat", lambda a, b: F.concat([a, b, a], axis=1), [(2, 3), (2, 2)]),
    Case("where", lambda a, b: F.where(_mask(a.backend, (3, 4)), a, b), [(3, 4), (4,)]),
    Case("masked_fill", lambda a: F.masked_fill(a, _mask(a.backend, (1, 4)), -3.0), [(3, 4)]),
    Case("matmul", lambda a, b: F.matmul(a, b), [(3, 4), (4, 5)], id="2d"),
    Case("matmul", lambda a, b: F.matmul(a, b), [(2, 3, 4), (2, 4, 5)], id="batched"),
    Case("matmul", lambda a, b: F.matmul(a, b), [(2, 3, 4), (4, 5)], id="bcast-right"),
    Case("matmul", lambda a, b: F.matmul(a, b), [(3, 4), (2, 4, 5)], id="bcast-left"),
    Case("linear", lambda x, w, b: F.linear(x, w, b), [(2, 3, 4), (4, 5), (5,)], id="bias"),
    Case("linear", lambda x, w: F.linear(x, w), [(3, 4), (4, 2)], id="nobias"),
    Case("linear", lambda x, w, b: F.linear(x, w, b, transpose_w=True), [(2, 3, 4), (5, 4), (5,)], id="wT"),
    Case("softmax", lambda a: F.softmax(a, axis=-1), [(3, 5)]),
    Case("softmax", lambda a: F.softmax(a, axis=0), [(3, 5)], id="axis0"),
    Case("log_softmax", lambda a: F.log_softmax(a), [(3, 5)]),
    Case("layer_norm", lambda x, w, b: F.layer_norm(x, w, b), [(2, 3, 6), (6,), (6,)]),
    Case("layer_norm", lambda x: F.layer_norm(x), [(4, 5)], id="no-affine"),
    Case("layer_norm", lambda x, w: F.layer_norm(x, w), [(4, 5), (5,)], id="no-bias"),
    Case("rms_norm", lambda x, w: F.rms_norm(x, w), [(2, 3, 6), (6,)]),
    Case("rms_norm", lambda x: F.rms_norm(x), [(4, 5)], id="no-weight"),
    Case("embedding", lambda w: F.embedding(w, _idx(w.backend, (2, 5), 4)), [(4, 3)]),
    Case("dropout", lambda a: F.dropout(a, 0.3, RandomStream(seed=1)), [(4, 5)]),
    Case("cross_entropy", lambda z: F.cross_entropy(z, _idx(z.backend, (6,), 5)), [(6, 5)]),
    Case("cross_entropy", lambda z: F.cross_entropy(z, _idx(z.backend, (2, 3), 5)), [(2, 3, 5)], id="3d"),
    Case("cross_entropy", lambda z: F.cross_entropy(z, _idx(z.backend, (8,), 3), ignore_index=0), [(8, 3)], id="ignore"),
    Case("mse_loss", lambda a, b: F.mse_loss(a, b), [(3, 4), (3, 4)]),
    Case("attention", lambda q, k, v: F.attention(q, k, v), [(2, 2, 5, 3)] * 3, id="causal"),
    Case("attention", lambda q, k, v: F.attention(q, k, v, causal=False), [(1, 2, 4, 3)] * 3, id="full"),
    Case("attention", lambda q, k, v: F.attention(q, k, v), [(1, 2, 2, 3), (1, 2, 5, 3), (1, 2, 5, 3)], id="kv-cache"),
    Case("self_attention", lambda qkv: F.self_attention(qkv, 2), [(2, 5, 12)], id="causal"),
    Case("self_attention", lambda qkv: F.self_attention(qkv, 3, causal=False), [(1, 4, 9)], id="full"),
    Case("unbind", lambda a: (lambda p: p[0] * p[2] + p[1])(F.unbind(a, axis=1)), [(2, 3, 4)]),
    Case("unbind", lambda a: (lambda p: p[0] * 2.0 + p[2])(F.unbind(a, axis=-1)), [(2, 3)], id="unused-part"),
]


def case_id(case: Case) -> str:
    return f"{case.op}-{case.id}" if case.id else case.op


def case_inputs(backend, case: Case, dtype: str = "float64") -> list:
    """Seeded inputs for a case: normal, or uniform in [0.5, 2] when positive."""
    rng = backend.rng(42)
    out = []
    for shape in case.shapes:
        d = rng.uniform(shape, 0.5, 2.0, dtype=dtype) if case.positive else rng.normal(shape, dtype=dtype)
        out.append(Tensor(d, device=backend, requires_grad=True))
    return out


def check_case(backend, case: Case, **tolerances):
    """Gradient-check one case in float64 on `backend`; returns a GradcheckResult."""
    return gradcheck(case.fn, *case_inputs(backend, case), **tolerances)


def report(backend, cases, write=print) -> tuple:
    """Check each case on `backend`, writing one row per case (the worst element's
    analytic and numerical gradient, the largest error); -> (failed case ids, (worst error, case id))."""
    write(f"{'case':<24}{'elements':>9}{'analytic':>15}{'numeric':>15}{'abs err':>11}  result")
    failed, worst = [], (0.0, "")
    for case in cases:
        res = check_case(backend, case)
        w = res.worst
        write(f"{case_id(case):<24}{res.checked:>9}{w.get('analytic', 0.0):>15.6e}{w.get('numeric', 0.0):>15.6e}"
              f"{res.max_abs_err:>11.2e}  {'ok' if res.ok else 'FAIL'}")
        if not res.ok:
            failed.append(case_id(case))
        if res.max_abs_err >= worst[0]:
            worst = (res.max_abs_err, case_id(case))
    return failed, worst

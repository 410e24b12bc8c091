"""Every registered op, gradient-checked on every backend, float32 vs float64."""
import pytest

import tinyllm
from tinyllm.ops import OPS

from op_table import CASES


def _inputs(backend, case, dtype="float64"):
    rng = backend.rng(42)
    out = []
    for shape in case.shapes:
        if case.positive:
            d = rng.uniform(shape, 0.5, 2.0, dtype=dtype)
        else:
            d = rng.normal(shape, dtype=dtype)
        out.append(tinyllm.Tensor(d, device=backend, requires_grad=True))
    return out


def test_every_op_has_a_table_entry():
    missing = sorted(set(OPS) - {c.op for c in CASES})
    assert not missing, f"ops with no gradient-check entry in tests/op_table.py: {missing}"


def test_every_exported_op_is_registered():
    exported = {n for n in tinyllm.ops.__all__ if n not in ("OPS", "op", "causal_mask")}
    assert exported == set(OPS)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.op}-{c.id}" if c.id else c.op for c in CASES])
def test_gradcheck(backend, case):
    res = tinyllm.gradcheck(case.fn, *_inputs(backend, case))
    assert res.ok, f"{case.op}: {res}"
    assert res.checked > 0


@pytest.mark.parametrize("case", CASES, ids=[f"{c.op}-{c.id}" if c.id else c.op for c in CASES])
def test_float32_forward_matches_float64(backend, case):
    import numpy as np

    y64 = case.fn(*_inputs(backend, case, "float64"))
    y32 = case.fn(*_inputs(backend, case, "float32"))
    assert backend.dtype_name(y32.dtype) == "float32", f"{case.op} promoted float32 to {y32.dtype}"
    np.testing.assert_allclose(y32.numpy(), y64.numpy(), rtol=1e-4, atol=1e-5)

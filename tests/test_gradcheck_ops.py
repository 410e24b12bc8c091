"""Every registered op, gradient-checked on every backend, float32 vs float64."""
import numpy as np
import pytest

import tinyllm
from backends import DeviceError
from tinyllm.ops import OPS
from tinyllm.ops.checks import CASES, case_id, case_inputs, check_case


def test_every_op_has_a_table_entry():
    missing = sorted(set(OPS) - {c.op for c in CASES})
    assert not missing, f"ops with no gradient-check entry in tinyllm/ops/checks.py: {missing}"


def test_every_exported_op_is_registered():
    exported = {n for n in tinyllm.ops.__all__ if n not in ("OPS", "op", "causal_mask", "ShapeError", "device_array")}
    assert exported == set(OPS)


def needs_float64(backend):
    """The checks run in float64: a device without it (torch:mps) skips, with its reason."""
    try:
        backend.dtype("float64")
    except DeviceError as e:
        pytest.skip(str(e))


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_gradcheck(backend, case):
    needs_float64(backend)
    res = check_case(backend, case)
    assert res.ok, f"{case.op}: {res}"
    assert res.checked > 0


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_float32_forward_matches_float64(backend, case):
    needs_float64(backend)
    y64 = case.fn(*case_inputs(backend, case, "float64"))
    y32 = case.fn(*case_inputs(backend, case, "float32"))
    assert backend.dtype_name(y32.dtype) == "float32", f"{case.op} promoted float32 to {y32.dtype}"
    np.testing.assert_allclose(y32.numpy(), y64.numpy(), rtol=1e-4, atol=1e-5)

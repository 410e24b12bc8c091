"""Backend parametrization: cpu and strict always, cuda where a GPU is usable.

TINYLLM_BACKENDS=cpu,strict,cuda (the default) selects which to run; a
selected cuda without a usable GPU is reported as skipped, with the reason.
"""
import os

import pytest

from backends import cuda_problem, get_backend

SELECTED = [b.strip() for b in os.environ.get("TINYLLM_BACKENDS", "cpu,strict,cuda").split(",") if b.strip()]


def _param(name):
    if name == "cuda":
        problem = cuda_problem(0)
        if problem is not None:
            return pytest.param(name, marks=pytest.mark.skip(reason=f"cuda backend skipped: {problem}"))
    return pytest.param(name)


BACKENDS = [_param(n) for n in SELECTED]


@pytest.fixture(params=BACKENDS)
def backend(request):
    return get_backend(request.param, fallback=False)

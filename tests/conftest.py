"""Backend parametrization: cpu, strict and strict:1 always, cuda where a GPU is usable.

TINYLLM_BACKENDS=cpu,strict,strict:1,cuda (the default) selects which to run; a
selected cuda without a usable GPU is reported as skipped, with the reason.

strict:1 keeps its arrays on array-api-strict's "device1": arrays of two devices
refuse to mix and NumPy refuses to read them, as with a GPU. Every test that
takes the `backend` fixture runs there: the gradient-check table, the engine,
nn/models, optimizers, sampling, training and exact resume, device moves and
the transfer budget, the on-device generator. Cheap by construction (tiny
models): 172 tests, 12 s of the 7.7-minute full suite on an idle 2-core machine.
"""
import os

import pytest

from backends import cuda_problem, get_backend
from backends.env import setting

SELECTED = [b.strip() for b in setting("TINYLLM_BACKENDS").split(",") if b.strip()]  # default: backends/env.py


def _param(name):
    if name.startswith("cuda"):
        problem = cuda_problem(0)
        if problem is not None:
            return pytest.param(name, marks=pytest.mark.skip(reason=f"cuda backend skipped: {problem}"))
    return pytest.param(name)


BACKENDS = [_param(n) for n in SELECTED]


@pytest.fixture(params=BACKENDS)
def backend(request):
    return get_backend(request.param, fallback=False)


@pytest.fixture
def isolated_backends():
    """Backends a test makes, registers or forgets are undone afterwards (backends.select's public registry)."""
    from backends import select

    before = select.registered()
    yield
    for name in select.registered():
        select.forget(name)
    for b in before.values():
        select.register(b)

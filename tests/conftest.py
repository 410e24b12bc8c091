"""Backend parametrization: cpu, strict and strict:1 always, torch where PyTorch is installed, cuda
where a GPU is usable.

TINYLLM_BACKENDS=cpu,strict,strict:1,torch,cuda (the default) selects which to run;
a selected cuda without a usable GPU, or torch without PyTorch (or without the
GPU it names), is reported as skipped, with the reason. An
empty or unknown selection is a usage error (exit 4) naming the valid backends,
not a run that skips every backend test and passes.

strict:1 keeps its arrays on array-api-strict's "device1": arrays of two devices
refuse to mix and NumPy refuses to read them, as with a GPU. Every test that
takes the `backend` fixture runs there: the gradient-check table, the engine,
nn/models, optimizers, sampling, training and exact resume, device moves and
the transfer budget, the on-device generator. Cheap by construction (tiny
models): 172 tests, 12 s of the 7.7-minute full suite on an idle 2-core machine.
"""
import os
import re
import shutil
import tempfile

import pytest

from backends import cuda_problem, devices, get_backend
from backends.env import setting

# the datasets runs tokenize once are cached (tinyllm/data/cached.py): in a folder of this session's, not ~/.cache
_CACHE = None if os.environ.get("TINYLLM_CACHE_DIR") else tempfile.mkdtemp(prefix="tinyllm-test-cache-")
if _CACHE:
    os.environ["TINYLLM_CACHE_DIR"] = _CACHE

SELECTED = [b.strip() for b in setting("TINYLLM_BACKENDS").split(",") if b.strip()]  # default: backends/env.py


def _param(name):
    if name.startswith("torch"):
        from backends.torch import status

        problem = status(*devices.parse(name))[0]
        if problem is not None:
            return pytest.param(name, marks=pytest.mark.skip(reason=f"{name} backend skipped: {problem}"))
    if name.startswith("cuda"):
        problem = cuda_problem(0)
        if problem is not None:
            return pytest.param(name, marks=pytest.mark.skip(reason=f"cuda backend skipped: {problem}"))
    return pytest.param(name)


BACKENDS = [_param(n) for n in SELECTED]
VALID = "cpu, strict, strict:1, strict:2, torch, torch:cuda, torch:cuda:N, torch:mps, cuda, cuda:N"


def pytest_configure(config):
    known = r"cpu|strict(:[0-2])?|cuda(:\d+)?|torch(:cpu|:mps|:cuda(:\d+)?)?"
    unknown = [n for n in SELECTED if not re.fullmatch(known, n)]
    if not SELECTED or unknown:
        what = f"names unknown backend(s) {', '.join(unknown)}" if unknown else "selects no backend"
        raise pytest.UsageError(f"TINYLLM_BACKENDS={os.environ.get('TINYLLM_BACKENDS', '')!r} {what}; "
                                f"give a comma-separated list of {VALID} (default: cpu,strict,strict:1,torch,cuda)")


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


def pytest_sessionfinish(session, exitstatus):
    if _CACHE:
        shutil.rmtree(_CACHE, ignore_errors=True)

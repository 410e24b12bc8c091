"""tinyllm's public face: __all__ names what a user imports, and nothing there hides a module."""
import inspect
import pkgutil

import tinyllm

INTERNAL = {"op", "OPS", "device_array"}  # they stay in tinyllm/ops (registry.py, _util.py)


def test_all_lists_public_names_that_exist():
    names = tinyllm.__all__
    assert len(names) == len(set(names))
    assert [n for n in names if n.startswith("_") or n in INTERNAL] == []
    assert [n for n in names if not hasattr(tinyllm, n)] == []
    assert {"Tensor", "tensor", "no_grad", "device", "gradcheck", "Trainer", "TrainConfig", "generate", "ops",
            "matmul", "cross_entropy", "manual_seed", "load_trained"} <= set(names)


def test_internal_names_are_not_on_tinyllm():
    assert [n for n in INTERNAL if hasattr(tinyllm, n)] == []
    from tinyllm.ops._util import device_array  # noqa: F401  (where they live)
    from tinyllm.ops.registry import OPS, op  # noqa: F401


def test_no_function_shadows_a_module_of_tinyllm():
    """`tinyllm.tensor(...)` and `tinyllm.gradcheck(...)` are the functions; their modules have other names
    (tinyllm/autograd.py, tinyllm/finite_diff.py), so `import tinyllm.X` and `tinyllm.X` agree."""
    modules = {m.name for m in pkgutil.iter_modules(tinyllm.__path__)}
    shadowed = [n for n in modules if hasattr(tinyllm, n) and not inspect.ismodule(getattr(tinyllm, n))]
    assert shadowed == []


def test_the_readme_library_lines_work():
    x = tinyllm.tensor([[1.0, 2.0], [3.0, 4.0]], device="cpu", requires_grad=True)
    w = tinyllm.tensor([[0.5], [-1.0]], requires_grad=True)
    loss = tinyllm.mse_loss(tinyllm.tanh(x @ w), [[0.0], [1.0]])
    loss.backward()
    assert x.grad.shape == (2, 2) and w.grad.shape == (2, 1)
    assert tinyllm.gradcheck(lambda a: (a * a).sum(), tinyllm.tensor([1.0, 2.0], dtype="float64",
                                                                     requires_grad=True))


def test_the_version_is_pyprojects():
    import pathlib

    import pytest

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    from tinyllm.version import __version__

    project = tomllib.loads((pathlib.Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    assert tinyllm.__version__ == __version__ == project["version"]

"""The two floors: only backends/ may import an array library."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
FORBIDDEN = {"numpy", "cupy", "cupyx", "array_api_strict"}


def _imports(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name.split(".")[0], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module.split(".")[0], node.lineno


def test_tinyllm_imports_no_array_library():
    bad = [f"{p.relative_to(ROOT)}:{line} imports {mod}"
           for p in sorted((ROOT / "tinyllm").rglob("*.py"))
           for mod, line in _imports(p) if mod in FORBIDDEN]
    assert not bad, "only backends/ may import an array library:\n" + "\n".join(bad)


def test_backends_never_import_tinyllm():
    bad = [f"{p.relative_to(ROOT)}:{line}" for p in sorted((ROOT / "backends").rglob("*.py"))
           for mod, line in _imports(p) if mod == "tinyllm"]
    assert not bad, bad

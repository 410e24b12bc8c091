"""The two floors: only backends/ may import an array library."""
import ast
import pathlib
import sys

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


# -- no private names across packages ------------------------------------------------------------------
# A package (a directory: tinyllm/ops, tinyllm/nn, backends, scripts, ...) uses another's public names
# only: no `from ..ops._util import raw`, no `select._instances`, no `backend._cache`. Tests may reach in.

PRODUCTION = ("tinyllm", "backends", "scripts")


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _package(path) -> str:
    return ".".join(path.relative_to(ROOT).parts[:-1])


def _module_package(module: str, importer: str) -> str:
    """The package holding `module` (a dotted name; a bare sibling name when scripts import their helpers)."""
    if "." not in module and (ROOT.joinpath(*importer.split(".")) / f"{module}.py").exists():
        return importer
    parts = module.split(".")
    return module if ROOT.joinpath(*parts).is_dir() else ".".join(parts[:-1]) or module


def _absolute(node, package: str) -> str:
    if node.level == 0:
        return node.module
    base = package.split(".")[:len(package.split(".")) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def private_crossings(files) -> list:
    """`file:line what` for each private name one package takes from another: imported (`from a._b
    import c`, `from a import _c`), read off an imported name (`mod._x`, `Cls._x`), or read off an
    object where only another package defines that name (`backend._cache`)."""
    trees = {p: ast.parse(p.read_text(), filename=str(p)) for p in files}
    defined = {}  # package -> the private names its files define (functions, classes, attributes, slots)
    for p, tree in trees.items():
        names = defined.setdefault(_package(p), set())
        for n in ast.walk(tree):
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(n.name)
            elif isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store):
                names.add(n.attr)
            elif isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                names.add(n.id)
            elif isinstance(n, ast.Constant) and isinstance(n.value, str) and _private(n.value):
                names.add(n.value)  # __slots__ entries
    anywhere = set().union(*defined.values())
    bad = []
    for p, tree in trees.items():
        pkg, where, origin = _package(p), p.relative_to(ROOT), {}
        for n in ast.walk(tree):
            if isinstance(n, ast.ImportFrom):
                module = _absolute(n, pkg)
                for a in n.names:
                    whole = f"{module}.{a.name}"
                    is_module = ROOT.joinpath(*whole.split(".")).with_suffix(".py").exists()
                    src = _module_package(whole if is_module else module, pkg)
                    origin[a.asname or a.name] = src
                    if src != pkg and (_private(a.name) or any(map(_private, module.split(".")))):
                        bad.append(f"{where}:{n.lineno} from {module} import {a.name}")
            elif isinstance(n, ast.Import):
                for a in n.names:
                    origin[a.asname or a.name.split(".")[0]] = _module_package(a.name, pkg)
                    if any(map(_private, a.name.split("."))):
                        bad.append(f"{where}:{n.lineno} import {a.name}")
        for n in ast.walk(tree):
            if not (isinstance(n, ast.Attribute) and _private(n.attr)):
                continue
            v = n.value
            if isinstance(v, ast.Name) and origin.get(v.id, pkg) != pkg:
                bad.append(f"{where}:{n.lineno} {v.id}.{n.attr}")
            elif not (isinstance(v, ast.Name) and v.id in ("self", "cls")) \
                    and n.attr in anywhere and n.attr not in defined[pkg]:
                bad.append(f"{where}:{n.lineno} ._{n.attr.lstrip('_')} (defined in another package)")
    return bad


def test_no_private_names_cross_packages():
    files = [p for d in PRODUCTION for p in sorted((ROOT / d).rglob("*.py"))]
    bad = private_crossings(files)
    assert not bad, "use (or add) a public name instead:\n" + "\n".join(bad)


def test_the_private_name_check_finds_each_kind(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "_util.py").write_text("def raw(): pass\n")
    (tmp_path / "a" / "mod.py").write_text("_table = {}\nclass K:\n    def __init__(self):\n        self._cache = {}\n")
    (tmp_path / "b" / "use.py").write_text(
        "from a._util import raw\nfrom a.mod import _table\nfrom a import mod\nmod._table\ndef f(k):\n    return k._cache\n")
    (tmp_path / "a" / "ok.py").write_text("from ._util import raw\nfrom .mod import _table\n")  # one package: fine
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    bad = private_crossings(sorted(tmp_path.rglob("*.py")))
    assert [b.split(" ", 1)[0] for b in bad] == ["b/use.py:1", "b/use.py:2", "b/use.py:4", "b/use.py:6"], bad


# -- backends/: a wing per device, no circles ------------------------------------------------------

def _backends_module(path, root) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def backends_import_graph(root=None) -> dict:
    """{module: the backends modules it imports}, function-level imports included (a lazy import is
    an import too), for every file under backends/."""
    root = root or ROOT
    files = {_backends_module(p, root): p for p in sorted((root / "backends").rglob("*.py"))}
    graph = {}
    for mod, p in files.items():
        package = mod if p.name == "__init__.py" else mod.rpartition(".")[0]
        edges = graph.setdefault(mod, set())
        for n in ast.walk(ast.parse(p.read_text(), filename=str(p))):
            if isinstance(n, ast.ImportFrom):
                base = _absolute(n, package)
                for a in n.names:  # `from . import x` imports the module x when there is one
                    edges.add(f"{base}.{a.name}" if f"{base}.{a.name}" in files else base)
            elif isinstance(n, ast.Import):
                edges.update(a.name for a in n.names)
        edges &= files.keys() - {mod}
    return graph


def import_circles(graph: dict) -> list:
    """Each circle of the graph once, as [a, b, ..., a]."""
    circles, done = [], set()

    def visit(mod, path):
        if mod in path:
            circle = path[path.index(mod):] + [mod]
            if frozenset(circle) not in done:
                done.add(frozenset(circle))
                circles.append(circle)
            return
        for nxt in sorted(graph.get(mod, ())):
            visit(nxt, path + [mod])

    for mod in sorted(graph):
        visit(mod, [])
    return circles


def test_backends_import_no_module_that_imports_them_back():
    assert not import_circles(backends_import_graph()), import_circles(backends_import_graph())


def test_the_circle_check_finds_a_lazy_circle(tmp_path):
    (tmp_path / "backends" / "cpu").mkdir(parents=True)
    (tmp_path / "backends" / "__init__.py").write_text("")
    (tmp_path / "backends" / "cpu" / "__init__.py").write_text("")
    (tmp_path / "backends" / "cpu" / "a.py").write_text("from .b import f\n")
    (tmp_path / "backends" / "cpu" / "b.py").write_text("def f():\n    from . import a\n")
    assert import_circles(backends_import_graph(tmp_path)) == [["backends.cpu.a", "backends.cpu.b", "backends.cpu.a"]]


STRICT_RUN = """
import sys, backends
backends.get_backend("strict")
print(" ".join(sorted(m for m in sys.modules if m.startswith(("backends", "numba", "threadpoolctl")))))
print(" ".join(sorted(name for name, m in list(sys.modules.items())
                      if any(hasattr(m, a) for a in ("NumpyFast", "jit_loops", "matmul2d")))))
"""


def test_a_strict_run_loads_none_of_the_cpus_kernels():
    """`import backends` and a strict (or CUDA) backend load no CPU kernel, numba loop or MKL."""
    import subprocess

    out = subprocess.run([sys.executable, "-c", STRICT_RUN], capture_output=True, text=True, cwd=ROOT,
                         timeout=120, check=True).stdout.splitlines()
    loaded = out[0].split()
    assert "backends.strict" in loaded
    assert not [m for m in loaded if m.startswith(("backends.cpu.kernels", "backends.cpu.jit", "backends.cpu.mkl",
                                                   "backends.cpu.threads", "numba", "threadpoolctl"))], loaded
    assert out[1:] == [""], f"modules with CPU kernels loaded: {out[1]}"


# -- tinyllm/: no circles, no arrow up to tinyllm/__init__ ------------------------------------------

def tinyllm_import_graph(root=None) -> tuple:
    """({module: the tinyllm modules it imports}, [arrows up]) for every file under tinyllm/. An import inside
    a function counts, and so does the __init__ of each package the target sits in (importing
    tinyllm.train.guards runs tinyllm/train/__init__.py first), except the importer's own packages, which
    are already running. An arrow up is an import of tinyllm/__init__ itself from inside the package."""
    root = root or ROOT
    files = {_backends_module(p, root): p for p in sorted((root / "tinyllm").rglob("*.py"))}
    graph, up = {}, []
    for mod, p in files.items():
        package = mod if p.name == "__init__.py" else mod.rpartition(".")[0]
        own = {mod} | {".".join(mod.split(".")[:i]) for i in range(1, mod.count(".") + 1)}
        edges = graph.setdefault(mod, set())
        for n in ast.walk(ast.parse(p.read_text(), filename=str(p))):
            if isinstance(n, ast.ImportFrom):
                base = _absolute(n, package)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in n.names]
            elif isinstance(n, ast.Import):
                targets = [a.name for a in n.names]
            else:
                continue
            for t in targets:
                if t == "tinyllm" and mod != "tinyllm":
                    up.append(f"{p.relative_to(root)}:{n.lineno}")
                parts = t.split(".")
                edges.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
        edges &= files.keys() - own
    return graph, up


def test_tinyllm_has_no_import_circles():
    circles = import_circles(tinyllm_import_graph()[0])
    assert not circles, "\n".join(" -> ".join(c) for c in circles)


def test_nothing_inside_tinyllm_imports_tinyllm_init():
    """__version__ and the rest come from their own modules (tinyllm/version.py), never from the package top,
    which imports everything: an arrow up is a circle waiting for its first import-time use."""
    assert not tinyllm_import_graph()[1]


def test_the_tinyllm_graph_sees_a_circle_through_a_package_init(tmp_path):
    """trainer -> dist.parallel -> (lazily) dist.stop -> train.guards: guards runs train/__init__, which
    imports the trainer. Such a circle, and an arrow up, are found."""
    files = {"__init__.py": "", "train/__init__.py": "from .trainer import T\n",
             "train/trainer.py": "from ..dist import P\n", "train/guards.py": "",
             "dist/__init__.py": "from .parallel import P\n",
             "dist/parallel.py": "class P:\n    def g(self):\n        from .stop import G\n",
             "dist/stop.py": "from ..train.guards import x\nfrom .. import __version__\n"}
    for name, text in files.items():
        (tmp_path / "tinyllm" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "tinyllm" / name).write_text(text)
    graph, up = tinyllm_import_graph(tmp_path)
    assert import_circles(graph) == [["tinyllm.dist", "tinyllm.dist.parallel", "tinyllm.dist.stop", "tinyllm.train",
                                      "tinyllm.train.trainer", "tinyllm.dist"]]
    assert up == [str(pathlib.Path("tinyllm/dist/stop.py")) + ":2"]


# -- sizes: short functions, a trainer that reads in one sitting -----------------------------------

MAX_FUNCTION_LINES = 60
MAX_TRAINER_LINES = 300


def long_functions(paths) -> list:
    return [f"{p.relative_to(ROOT)}:{n.lineno} {n.name} ({n.end_lineno - n.lineno + 1} lines)"
            for p in paths for n in ast.walk(ast.parse(p.read_text(), filename=str(p)))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.end_lineno - n.lineno + 1 > MAX_FUNCTION_LINES]


def test_no_function_over_60_lines():
    paths = [p for d in ("tinyllm", "backends") for p in sorted((ROOT / d).rglob("*.py"))]
    bad = long_functions(paths)
    assert not bad, "split these into smaller functions:\n" + "\n".join(bad)


def test_the_trainer_fits_300_lines():
    n = len((ROOT / "tinyllm" / "train" / "trainer.py").read_text().splitlines())
    assert n <= MAX_TRAINER_LINES, f"tinyllm/train/trainer.py has {n} lines; move a cohesive piece into tinyllm/train/"

"""The tree tells the architecture: grader/ is four rooms in layers, and imports flow one way.

Every module under grader/ is read with ``ast`` (never imported) and every
import statement counts, those inside functions and ``if TYPE_CHECKING:``
included, so an import moved into a function to dodge a rule still breaks it.
A failure names the file, the line and the edge. docs/architecture.md explains
the rooms; each room's ``__init__`` docstring says what it owns and what it
must never import.
"""
from __future__ import annotations

import ast
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GRADER = REPO / "grader"

LAYERS = ("sandbox", "engine", "builders", "app")   # bottom to top: a room imports only itself and rooms below
ENTRY_POINTS = ("grader.__main__", "grader.starter")   # grader/'s own modules, at the top (`python -m grader`, ...)
WORKER = "grader.sandbox.worker"                    # runs student code: imports of the grader only SHARED
SHARED = "grader.sandbox.probing"                   # the one module both sides of the trust boundary import
SANDBOX_SIDE = ("probes", "fixtures")               # assignment modules that the sandbox imports
AUTHOR_API = ("grader.engine.checks", "grader.engine.compare", "grader.engine.reference", SHARED)


@dataclass(frozen=True)
class Edge:
    """One import: ``source`` imports ``target`` at ``file:line``."""

    source: str
    target: str
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.source} imports {self.target}"


def module_name(path: Path) -> str:
    """grader/engine/grade.py -> grader.engine.grade; grader/engine/__init__.py -> grader.engine."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def grader_modules() -> dict[str, Path]:
    """Every module of the grader package (the bundle's data/ folder holds none), by dotted name."""
    return {module_name(p): p for p in sorted(GRADER.rglob("*.py"))
            if "__pycache__" not in p.parts and "data" not in p.relative_to(GRADER).parts}


def imports(path: Path, known: set[str], name: str | None = None) -> list[Edge]:
    """The grader modules that the file at ``path`` imports, one edge per name imported.

    ``from X import y`` is an edge to ``X.y`` when that is a module, else to ``X``.
    ``name``: the file's dotted name, for its relative imports (None: it has none we follow).
    """
    is_package = path.name == "__init__.py"
    package = name.split(".") if (name and is_package) else (name.split(".")[:-1] if name else [])
    rel = path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else str(path)
    edges = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if not package:
                    continue
                base = package[:len(package) - node.level + 1]
                module = ".".join(base + (node.module.split(".") if node.module else []))
            else:
                module = node.module or ""
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in known else module for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:   # import grader.a.b: the longest known prefix
                target = target.rpartition(".")[0]
            if target and target != name:
                edges.append(Edge(name or rel, target, rel, node.lineno))
    return list(dict.fromkeys(edges))   # `from x import a, b`: one edge


def grader_edges() -> list[Edge]:
    modules = grader_modules()
    return [e for name, path in modules.items() for e in imports(path, set(modules), name)]


def room(module: str) -> str | None:
    """The room (subpackage) a module belongs to; None for the package root (grader/__init__.py)."""
    if module in ENTRY_POINTS:
        return LAYERS[-1]
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def cycles(edges: list[Edge], key=lambda m: m) -> list[list[Edge]]:
    """The edges of each cycle (strongly connected component of more than one node) in the graph."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        a, b = key(e.source), key(e.target)
        if a is not None and b is not None and a != b:
            graph.setdefault(a, set()).add(b)
            graph.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(v: str) -> None:   # Tarjan; the graphs here are a few dozen nodes deep at most
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [[e for e in edges if key(e.source) in c and key(e.target) in c and key(e.source) != key(e.target)]
            for c in found]


def upward(edges: list[Edge]) -> list[str]:
    """Imports from a room up to a room above it."""
    order = {name: i for i, name in enumerate(LAYERS)}
    return [f"{e}: {room(e.source)} may not import {room(e.target)}" for e in edges
            if room(e.source) in order and room(e.target) in order and order[room(e.target)] > order[room(e.source)]]


def out_of_the_worker(edges: list[Edge]) -> list[str]:
    """Imports by the worker of anything but itself and SHARED, and by SHARED of anything of the grader."""
    return [f"{e}: the worker imports only itself and {SHARED}" for e in edges
            if (e.source == WORKER or e.source.startswith(WORKER + "."))
            and not (e.target == SHARED or e.target == WORKER or e.target.startswith(WORKER + "."))] + \
        [f"{e}: {SHARED} imports nothing of the grader" for e in edges if e.source == SHARED]


def into_the_worker(edges: list[Edge]) -> list[str]:
    """Imports of the worker from outside the sandbox."""
    return [f"{e}: only the sandbox imports its worker/" for e in edges
            if (e.target == WORKER or e.target.startswith(WORKER + ".")) and room(e.source) != "sandbox"]


def test_the_grader_is_four_rooms_and_each_init_only_says_what_it_owns():
    rooms = sorted(p.name for p in GRADER.iterdir() if (p / "__init__.py").is_file())
    assert rooms == sorted(LAYERS), f"grader/ has the subpackages {rooms}; LAYERS declares {list(LAYERS)}"
    loose = sorted(module_name(p) for p in GRADER.glob("*.py"))
    assert loose == sorted(["grader", *ENTRY_POINTS]), f"modules outside the rooms: {loose}"
    for init in [GRADER / "__init__.py", *(GRADER / r / "__init__.py" for r in LAYERS),
                 GRADER / "sandbox" / "worker" / "__init__.py"]:
        tree = ast.parse(init.read_text(encoding="utf-8"))
        doc = ast.get_docstring(tree) or ""
        where = init.relative_to(REPO)
        assert init == GRADER / "__init__.py" or len(doc.strip().splitlines()) >= 2, \
            f"{where}: a docstring saying what the package owns and what it must never import"
        eager = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        assert not eager, (f"{where}:{eager[0].lineno}: an import in a package's __init__ runs for every module "
                           "of it (`grader --help` must not import torch)")


def test_no_module_of_the_grader_imports_itself_back():
    found = cycles(grader_edges())
    assert not found, "import cycles among grader modules:\n" + "\n\n".join(
        "\n".join(f"  {e}" for e in c) for c in found)


def test_rooms_import_only_rooms_below_them():
    edges = grader_edges()
    bad = upward(edges)
    assert not bad, f"imports up the layers ({' < '.join(LAYERS)}):\n" + "\n".join(f"  {b}" for b in bad)
    assert not cycles(edges, key=room), "the rooms import each other in a circle"


def test_the_worker_imports_nothing_of_the_grader_but_the_shared_module():
    bad = out_of_the_worker(grader_edges())
    assert not bad, "the worker runs student code and sees only itself and the shared module:\n" + \
        "\n".join(f"  {b}" for b in bad)


def test_only_the_sandbox_reaches_into_its_worker():
    bad = into_the_worker(grader_edges())
    assert not bad, ("other rooms use sandbox.runner (probes), sandbox.bounded (parsing) and "
                     "sandbox.isolation:\n" + "\n".join(f"  {b}" for b in bad))


def test_assignment_folders_import_only_the_authoring_api():
    """probes.py and fixtures.py run in the sandbox, where the grader is only SHARED; the parent-side
    modules (checks.py, hidden.py, helpers) use the authoring API that docs/authoring.md lists."""
    known = set(grader_modules())
    bad = []
    for path in sorted((REPO / "assignments").glob("*/*.py")):
        allowed = (SHARED,) if path.stem in SANDBOX_SIDE else AUTHOR_API
        bad += [f"  {e}" for e in imports(path, known) if e.target not in allowed]
    assert not bad, "assignment modules importing more of the grader than they may:\n" + "\n".join(bad)


def test_the_rules_see_an_import_hidden_in_a_function_and_a_cycle(tmp_path):
    known = set(grader_modules())
    for source, code, rule in (("grader.engine.bad", "from ..app import report", upward),
                               ("grader.sandbox.worker.bad", "from ...engine import grade", out_of_the_worker),
                               ("grader.builders.bad", "from ..sandbox.worker import main", into_the_worker)):
        path = tmp_path / "bad.py"
        path.write_text(f"def f():\n    {code}\n")
        edges = imports(path, known, source)
        assert [(e.source, e.line) for e in edges] == [(source, 2)] and len(rule(edges)) == 1, (code, edges)
    loop = [Edge("a", "b", "a.py", 1), Edge("b", "c", "b.py", 1), Edge("c", "a", "c.py", 3), Edge("c", "d", "c.py", 4)]
    assert [sorted(map(str, c)) for c in cycles(loop)] == [
        ["a.py:1: a imports b", "b.py:1: b imports c", "c.py:3: c imports a"]]


DOTTED = re.compile(r"(?<![\w./-])grader(?:\.[A-Za-z_]\w*)+")
PATH = re.compile(r"(?<![\w./-])grader/[\w./]*[\w/]")


def _defines(path: Path, name: str) -> bool:
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return True
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return True
        if isinstance(node, (ast.Import, ast.ImportFrom)) and any((a.asname or a.name) == name for a in node.names):
            return True
    return False


def test_every_module_and_path_the_code_docs_and_scripts_name_exists():
    """Module names in strings (``python -m grader.app.gradescope``, a bubblewrap bootstrap, docs) and
    grader/ paths in the docs are checked here, since no import statement covers them."""
    modules = grader_modules()
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    texts = [f for f in files if (f.endswith((".py", ".md", ".sh", ".toml")) or f == ".ci/run")
             and "/examples/" not in f and (REPO / f).is_file() and f != "tests/test_architecture.py"]   # its fakes
    stale = []
    for f in texts:
        for n, line in enumerate((REPO / f).read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            for name in DOTTED.findall(line):
                module, rest = name, []
                while module not in modules and "." in module:
                    module, _, last = module.rpartition(".")
                    rest.insert(0, last)
                if module not in modules or (rest and not _defines(modules[module], rest[0])):
                    stale.append(f"{f}:{n}: {name}")
            for path in PATH.findall(line):
                if not path.startswith("grader/data") and not (REPO / path).exists():
                    stale.append(f"{f}:{n}: {path}")
    assert not stale, "names of grader modules or files that do not exist:\n" + "\n".join(f"  {s}" for s in stale)

"""Load an assignment folder with every cross-reference checked, so a broken folder fails here,
naming the file and the key, and never at a student's expense.

An assignment is one folder, ``assignments/<name>/``::

    assignment.yaml   parts, tests, points, files, training runs (keys: grader/engine/config.py)
    README.md         the statement
    fixtures.py       inputs both sides rebuild from a seed (probe nets, batches); optional
    probes.py         sandbox side: @probe functions that call student code, with their schemas
    checks.py         parent side, public: @check functions shipped to students
    hidden.py         parent side, hidden: @check functions that need the reference solutions
    examples/         submissions graded by `grader demo`

The engine imports these modules as the package ``dgm_assignments.<name>`` (so
they may import each other relatively, and a used assignment's as
``..<other>.fixtures``); nothing under grader/ names an assignment.
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import re
import sys
import types
from dataclasses import replace
from pathlib import Path

from ..sandbox.probing import ProbeSpec, declares
from ..sandbox.probing import specs_in as probe_specs
from . import answer_checks
from .answers import AnswersError, load_template
from .checks import CheckSpec
from .checks import specs_in as check_specs
from .config import Assignment, ConfigError, parse_assignment, read_yaml, reference_path
from .paths import ASSIGNMENTS_DIR

NAME = re.compile(r"^[a-z][a-z0-9_]*$")
SANDBOX_MODULES = ("fixtures", "probes")       # what the sandbox sees of an assignment
BUILTIN_PROBES = ("answers",)                   # parts graded from data alone: no student code runs


def available(root: Path | None = None) -> list[str]:
    """Names of the assignments under ``root`` (folders holding an assignment.yaml; default: this
    repository's or bundle's)."""
    root = ASSIGNMENTS_DIR if root is None else root
    return sorted(p.parent.name for p in Path(root).glob("*/assignment.yaml") if NAME.match(p.parent.name))


def package(root: Path) -> str:
    """The name under which the assignments of ``root`` are imported (one package per root)."""
    root = Path(root).resolve()
    name = "dgm_assignments" if root == ASSIGNMENTS_DIR.resolve() else \
        "dgm_assignments_" + hashlib.sha1(str(root).encode()).hexdigest()[:10]
    if name not in sys.modules:
        pkg = types.ModuleType(name, f"the assignments under {root}")
        pkg.__path__ = [str(root)]
        sys.modules[name] = pkg
    return name


def import_part(root: Path, name: str, module: str) -> types.ModuleType | None:
    """``assignments/<name>/<module>.py`` imported as ``<package>.<name>.<module>``; None if absent.

    Raises:
        ConfigError: the module does not import (a syntax error, a bad import): the traceback's
            last line and the file are named.
    """
    path = Path(root) / name / f"{module}.py"
    if not path.is_file():
        return None
    try:
        return importlib.import_module(f"{package(root)}.{name}.{module}")
    except Exception as err:  # noqa: BLE001 - any failure to import is the folder's fault
        raise ConfigError(f"{path}: does not import ({type(err).__name__}: {err})") from err


@functools.lru_cache(maxsize=64)
def read(name: str, root: Path = ASSIGNMENTS_DIR) -> Assignment:
    """The assignment.yaml of ``name`` alone, parsed and checked, its modules not imported (no torch):
    enough to package or recognise a submission. Grading needs :func:`load`."""
    root = Path(root)
    yaml_path = root / name / "assignment.yaml"
    if not NAME.match(name) or not yaml_path.is_file():
        raise ConfigError(f"unknown assignment {name!r}; available: {', '.join(available(root)) or 'none'}")
    a = parse_assignment(read_yaml(yaml_path), str(yaml_path))
    if a.name != name:
        raise ConfigError(f"{yaml_path}: name: {a.name!r} must be the folder's name, {name!r}")
    return replace(a, folder=root / name)


def load_assignment(name: str, root: Path | None = None) -> Assignment:
    """The assignment ``name`` under ``root`` (default: this repository's or bundle's), loaded by :func:`load`."""
    return load(name, Path(root) if root is not None else ASSIGNMENTS_DIR)


@functools.lru_cache(maxsize=64)
def load(name: str, root: Path = ASSIGNMENTS_DIR) -> Assignment:
    """The assignment ``name`` under ``root``, its probes and checks resolved and every reference checked.

    Raises:
        ConfigError: the folder is broken (the message names the file and the key).
    """
    root = Path(root)
    folder = root / name
    yaml_path = folder / "assignment.yaml"
    if not NAME.match(name) or not yaml_path.is_file():
        raise ConfigError(f"unknown assignment {name!r}; available: {', '.join(available(root)) or 'none'}")
    a = parse_assignment(read_yaml(yaml_path), str(yaml_path))
    if a.name != name:
        raise ConfigError(f"{yaml_path}: name: {a.name!r} must be the folder's name, {name!r}")
    return _resolve(a, folder, root, stack=(name,))


def _resolve(a: Assignment, folder: Path, root: Path, stack: tuple[str, ...]) -> Assignment:
    where = str(folder / "assignment.yaml")
    probes: dict[str, ProbeSpec] = {}
    checks: dict[str, CheckSpec] = {f"answers.{k}": v for k, v in answer_checks.SPECS.items()}
    for i, other in enumerate(a.uses):
        if other in stack:
            raise ConfigError(f"{where}: uses[{i}]: {other!r} uses {a.name!r} back (a cycle)")
        if not (root / other / "assignment.yaml").is_file():
            raise ConfigError(f"{where}: uses[{i}]: no assignment {other!r} in {root}")
        used = load(other, root)
        probes.update({k: v for k, v in used.probes.items() if k.startswith(other + ".")})
        checks.update({k: v for k, v in used.checks.items() if k.startswith(other + ".")})
    own = import_part(root, a.name, "probes")
    for kind, spec in (probe_specs(own) if own else {}).items():
        probes[f"{a.name}.{kind}"] = spec
    hidden_module = import_part(root, a.name, "hidden")
    for module, hidden in ((import_part(root, a.name, "checks"), False), (hidden_module, True)):
        for cname, spec in (check_specs(module, hidden) if module else {}).items():
            if f"{a.name}.{cname}" in checks:
                raise ConfigError(f"{folder}: check {cname!r} is defined in both checks.py and hidden.py")
            checks[f"{a.name}.{cname}"] = spec
    bundle = hidden_module is None and not (folder / "hidden.py").exists()

    def qualify(ref: str) -> str:
        return ref if "." in ref or ref in BUILTIN_PROBES else f"{a.name}.{ref}"

    parts = []
    for i, part in enumerate(a.parts):
        at = f"{where}: parts[{i}] ({part.name})"
        kind = qualify(part.probe)
        if kind in BUILTIN_PROBES:
            if not a.answers:
                raise ConfigError(f"{at}.probe: 'answers' needs the assignment's answers: file")
        elif kind not in probes:
            raise ConfigError(f"{at}.probe: no probe kind {part.probe!r} (declared: "
                              f"{', '.join(sorted(probes)) or 'none'}; a probe is an @probe function in probes.py)")
        tests = []
        for j, test in enumerate(part.tests):
            tat = f"{at}.tests[{j}] ({test.name})"
            cid = test.check if test.check.startswith("answers.") else qualify(test.check)
            spec = checks.get(cid)
            if spec is None:
                if bundle and not test.public:
                    tests.append(replace(test, check=cid))   # a hidden check, not shipped to students
                    continue
                raise ConfigError(f"{tat}.check: no check {test.check!r} (an @check function in checks.py or "
                                  "hidden.py, or a used assignment's '<name>.<check>')")
            if test.public and spec.hidden:
                raise ConfigError(f"{tat}: public, but check {test.check!r} is hidden (defined in hidden.py): "
                                  "students would not have it")
            _check_reads(spec, kind, probes, tat, test.check)
            if cid == "answers.item":
                _check_answer_item(a, test, folder, root, tat)
            tests.append(replace(test, check=cid))
        parts.append(replace(part, probe=kind, tests=tuple(tests)))
    _check_files(a, folder, root, where, bundle)
    return replace(a, parts=tuple(parts), folder=folder, probes=probes, checks=checks)


def _check_reads(spec: CheckSpec, kind: str, probes: dict[str, ProbeSpec], at: str, ref: str) -> None:
    """A check reads the outputs of one probe kind, and only keys that kind declares."""
    if spec.probe is None:
        if kind not in BUILTIN_PROBES and spec.reads:
            raise ConfigError(f"{at}: check {ref!r} reads outputs but names no probe")
        return
    want = spec.probe if "." in spec.probe else None
    if kind in BUILTIN_PROBES or (want and want != kind) or (not want and kind.split(".", 1)[1] != spec.probe):
        raise ConfigError(f"{at}: check {ref!r} reads the outputs of probe {spec.probe!r}, but this part runs "
                          f"{kind!r}")
    outputs = probes[kind].outputs
    missing = [k for k in spec.reads if not declares(outputs, k)]
    if missing:
        raise ConfigError(f"{at}: check {ref!r} reads {', '.join(missing)}, which probe {kind!r} does not "
                          f"declare (its outputs: {', '.join(outputs)})")


def _check_answer_item(a: Assignment, test, folder: Path, root: Path, at: str) -> None:
    item = (test.args or {}).get("item")
    template = Path(root).parent / a.starter / a.answers
    try:
        items = load_template(template.read_text(encoding="utf-8"), a.answers)
    except (OSError, AnswersError) as err:
        raise ConfigError(f"{at}: the answers template {template} cannot be read ({err})") from err
    if item not in items:
        raise ConfigError(f"{at}.args.item: {item!r} is not an item of {template} ({', '.join(items)})")


def _check_files(a: Assignment, folder: Path, root: Path, where: str, bundle: bool) -> None:
    """The student files the assignment names exist in its starter folder (and the reference, when
    the solutions are here)."""
    repo = Path(root).parent
    starter = repo / a.starter
    if not (starter / a.module).is_file():
        raise ConfigError(f"{where}: module: {starter / a.module} does not exist")
    if a.answers and not (starter / a.answers).is_file():
        raise ConfigError(f"{where}: answers: {starter / a.answers} does not exist")
    for dest, src in (a.include or {}).items():
        if not bundle and (repo / "solutions").is_dir() and not (repo / "solutions" / str(src)).is_file():
            raise ConfigError(f"{where}: include: {dest}: {repo / 'solutions' / str(src)} does not exist")
    if not bundle and (repo / "solutions").is_dir():
        ref = reference_path(a, root)
        if not ref.is_file():
            raise ConfigError(f"{where}: module: the reference solution {ref} does not exist")


def defined_functions(path: Path, limit: int = 4 << 20) -> set[str]:
    """Names of the functions a student file defines at the top level (read as text, never run)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read(limit)
    except OSError:
        return set()
    if path.suffix == ".ipynb":   # top-level defs sit at the start of a cell line: "def f(
        return set(re.findall(r'"def\s+(\w+)\s*\(', text))
    return set(re.findall(r"^def\s+(\w+)\s*\(", text, re.M))


def guess(path: Path, root: Path = ASSIGNMENTS_DIR) -> list[Assignment]:
    """The assignments a folder (or file) could be for, best first.

    A candidate's student module must be there (by name, or for a file given
    alone, by suffix); Python modules come before notebooks (a folder holding
    both is the code assignment's), then candidates are ranked by how many of
    their graded functions the file defines.
    """
    path = Path(path)
    ranked = []
    for name in available(root):
        try:
            a = read(name, root)
        except ConfigError:
            continue
        if path.is_dir():
            module = path / a.module
        elif path.name == Path(a.module).name or path.suffix == Path(a.module).suffix:
            module = path
        else:
            continue
        if not module.is_file():
            continue
        defined = defined_functions(module)
        score = sum(f in defined for f in a.graded_functions) / max(1, len(a.graded_functions))
        ranked.append((a.notebook, -score, name, a))
    return [a for *_, a in sorted(ranked, key=lambda r: r[:3])]

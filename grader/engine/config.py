"""assignment.yaml -> frozen dataclasses; unknown or missing keys are errors that name the file and key.

Every key is a dataclass field whose ``doc`` says what it is for; docs/authoring.md
has the reference table generated from them (:func:`reference_table`).
"""
from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from .paths import ASSIGNMENTS_DIR

VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")


class ConfigError(ValueError):
    """An assignment folder is broken; the message names the file and the key."""


def _doc(text: str, default: Any = MISSING, **kw: Any) -> Any:
    """A dataclass field carrying its documentation (and default)."""
    meta = {"doc": text}
    if default is MISSING:
        return field(metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


@dataclass(frozen=True)
class Test:
    """One graded test: a registered check applied to a part's probe outputs."""

    name: str = _doc("shown to students, e.g. 'value and gradient'")
    check: str = _doc("id of a check: its name in this folder's checks.py or hidden.py, "
                      "'<assignment>.<name>' from an assignment this one uses, or a built-in 'answers.*'")
    points: float = _doc("points of this test", 0.0)
    public: bool = _doc("shipped to students and run by `grader check` (its check must be public)", False)
    visibility: str = _doc("Gradescope visibility; default: visible for public tests, else the "
                           "assignment's hidden_visibility", "")
    args: dict | None = _doc("extra arguments for the check (e.g. which short-answer item)", None)


@dataclass(frozen=True)
class Part:
    """A graded student function with the tests that exercise it."""

    name: str = _doc("the part's number in the statement, e.g. '1.2'")
    function: str = _doc("the student function (also the tests' tag); 'answers' for the short-answers part")
    probe: str = _doc("probe kind run in the sandbox: a name in this folder's probes.py, "
                      "'<assignment>.<kind>' from a used assignment, or 'answers' (no code runs)")
    tests: tuple[Test, ...] = _doc("the tests of this part")
    args: dict | None = _doc("extra probe arguments (e.g. conditional: true)", None)
    id: str = _doc("probe id when one function has several parts (default: the function)", "")

    @property
    def key(self) -> str:
        """The probe id of this part, unique within the assignment."""
        return self.id or self.function


@dataclass(frozen=True)
class ManualPart:
    """A part a person grades (a derivation); listed in results with its points."""

    name: str = _doc("the part's number and title")
    points: float = _doc("points a person awards")
    description: str = _doc("what is graded", "")
    bonus: bool = _doc("extra credit: listed, but not part of the total", False)
    figure: bool = _doc("graded from a figure the notebook draws: make_submission warns when the notebook "
                        "was saved without its outputs", False)


@dataclass(frozen=True)
class Training:
    """A training run whose outputs a submission should include (make_submission.sh warns if absent)."""

    output: str = _doc("glob of the files it writes, e.g. 'out_run1/sample_*.png'")
    command: str = _doc("the command that makes them, e.g. 'python train.py --variant run1'")


@dataclass(frozen=True)
class Assignment:
    """One assignment: its student files, graded parts and manual parts (assignment.yaml)."""

    name: str = _doc("the folder's name and the --assignment value")
    title: str = _doc("one line shown in reports and the student bundle")
    module: str = _doc("the student file holding the graded functions: a .py path or a notebook")
    parts: tuple[Part, ...] = _doc("the graded functions and their tests")
    required_files: tuple[str, ...] = _doc("files a submission must hold (default: the module)", ())
    optional_files: tuple[str, ...] = _doc("globs packed and graded when present (sample grids, ...)", ())
    include: dict | None = _doc("files of the student folder written once in another assignment's solution: "
                                "{path in this folder: path under solutions/}, e.g. a shared network", None)
    uses: tuple[str, ...] = _doc("assignments whose probes, checks and fixtures this one uses", ())
    answers: str = _doc("the short-answers file (template in the starter folder, key in solutions)", "")
    functions: tuple[str, ...] = _doc("functions a submission must define besides the graded ones", ())
    training: tuple[Training, ...] = _doc("training runs whose outputs belong in a submission", ())
    manual: tuple[ManualPart, ...] = _doc("parts graded by course staff", ())
    probe_timeout_s: float = _doc("seconds of its own time one probe may take (wall clock less waiting for a CPU)", 20.0)
    seed: int = _doc("seed of the probe inputs", 236)
    hidden_visibility: str = _doc("Gradescope visibility of tests that are not public", "visible")
    total_points: float | None = _doc("if given, automatic plus manual (non-bonus) points must add up to it", None)
    folder: Path | None = field(default=None, compare=False, repr=False, metadata={"yaml": False})
    probes: dict = field(default_factory=dict, compare=False, repr=False, metadata={"yaml": False})
    checks: dict = field(default_factory=dict, compare=False, repr=False, metadata={"yaml": False})

    @property
    def starter(self) -> str:
        """The student folder, ``starter/<name>``; its reference is ``solutions/<name>``."""
        return f"starter/{self.name}"

    @property
    def auto_points(self) -> float:
        return sum(t.points for p in self.parts for t in p.tests)

    @property
    def total(self) -> float:
        return self.auto_points + sum(m.points for m in self.manual if not m.bonus)

    @property
    def graded_functions(self) -> list[str]:
        """Every function a submission must define: the graded ones, then ``functions``."""
        out = [p.function for p in self.parts if p.probe != "answers"]
        return list(dict.fromkeys(out + list(self.functions)))

    @property
    def submitted_globs(self) -> tuple[str, ...]:
        """Optional files a submission carries: the ``optional_files`` and the answers file."""
        return self.optional_files + ((self.answers,) if self.answers else ())

    @property
    def notebook(self) -> bool:
        return self.module.endswith(".ipynb")


def _yaml_fields(cls: type) -> list:
    return [f for f in fields(cls) if f.metadata.get("yaml", True)]


def _build(cls: type, data: Any, where: str) -> dict:
    """Check ``data`` against the YAML fields of ``cls``; return the kwargs or raise ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    names = {f.name for f in _yaml_fields(cls)}
    unknown = sorted(map(str, set(data) - names))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(names))}")
    required = {f.name for f in _yaml_fields(cls) if f.default is MISSING and f.default_factory is MISSING}
    missing = sorted(required - set(data))
    if missing:
        raise ConfigError(f"{where}: missing key(s) {', '.join(missing)}")
    return dict(data)


def _list(value: Any, where: str) -> list:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
    return list(value)


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    return float(value)


def parse_assignment(data: Any, where: str) -> Assignment:
    """Build an Assignment from parsed YAML, validating every level (not the cross-references:
    see :func:`grader.engine.assignment.load`)."""
    top = _build(Assignment, data, where)
    hidden_vis = top.get("hidden_visibility", "visible")
    if hidden_vis not in VISIBILITIES:
        raise ConfigError(f"{where}: hidden_visibility must be one of {', '.join(VISIBILITIES)}")
    parts = []
    for i, raw in enumerate(_list(top.get("parts"), f"{where}: parts")):
        at = f"{where}: parts[{i}]"
        p = _build(Part, raw, at)
        tests = []
        for j, rt in enumerate(_list(p.get("tests"), f"{at}.tests")):
            t = _build(Test, rt, f"{at}.tests[{j}]")
            vis = t.get("visibility") or ("visible" if t.get("public") else hidden_vis)
            if vis not in VISIBILITIES:
                raise ConfigError(f"{at}.tests[{j}].visibility must be one of {', '.join(VISIBILITIES)}")
            points = _number(t.get("points", 0), f"{at}.tests[{j}].points")
            if points < 0:
                raise ConfigError(f"{at}.tests[{j}].points is negative")
            tests.append(Test(**{**t, "visibility": vis, "points": points}))
        if not tests:
            raise ConfigError(f"{at}: a part needs at least one test")
        names = [t.name for t in tests]
        if len(names) != len(set(names)):
            raise ConfigError(f"{at}: two tests share a name")
        parts.append(Part(**{**p, "tests": tuple(tests)}))
    if not parts:
        raise ConfigError(f"{where}: parts: an assignment needs at least one part")
    keys = [part.key for part in parts]
    if len(keys) != len(set(keys)):
        raise ConfigError(f"{where}: two parts share a probe id; give one of them an 'id'")
    manual = []
    for i, m in enumerate(_list(top.get("manual"), f"{where}: manual")):
        kw = _build(ManualPart, m, f"{where}: manual[{i}]")
        kw["points"] = _number(kw["points"], f"{where}: manual[{i}].points")
        manual.append(ManualPart(**kw))
    training = [Training(**_build(Training, t, f"{where}: training[{i}]"))
                for i, t in enumerate(_list(top.get("training"), f"{where}: training"))]
    top.update(parts=tuple(parts), manual=tuple(manual), training=tuple(training),
               required_files=tuple(_list(top.get("required_files"), f"{where}: required_files"))
               or (top["module"],),
               optional_files=tuple(_list(top.get("optional_files"), f"{where}: optional_files")),
               uses=tuple(_list(top.get("uses"), f"{where}: uses")),
               functions=tuple(_list(top.get("functions"), f"{where}: functions")))
    if top.get("include") is not None and not isinstance(top["include"], dict):
        raise ConfigError(f"{where}: include: expected a mapping of paths")
    a = Assignment(**top)
    if a.total_points is not None and abs(a.total - float(a.total_points)) > 1e-9:
        raise ConfigError(f"{where}: total_points is {a.total_points:g} but the parts and manual parts add up "
                          f"to {a.total:g}")
    return a


def read_yaml(path: Path) -> Any:
    """The parsed YAML of a trusted file (an assignment's own), or ConfigError naming the line."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise ConfigError(f"{path}{f' line {mark.line + 1}' if mark else ''}: not valid YAML ({err})") from err


def reference_table() -> str:
    """Markdown table of every assignment.yaml key, from the fields' own documentation."""
    rows = ["| key | default | what |", "| --- | --- | --- |"]
    for cls, prefix in ((Assignment, ""), (Part, "parts[]."), (Test, "parts[].tests[]."),
                        (ManualPart, "manual[]."), (Training, "training[].")):
        for f in _yaml_fields(cls):
            default = "required" if f.default is MISSING and f.default_factory is MISSING else repr(f.default)
            rows.append(f"| `{prefix}{f.name}` | {default} | {f.metadata['doc']} |")
    return "\n".join(rows)


def solution_path(a: Assignment, rel: str, root: Path = ASSIGNMENTS_DIR) -> Path:
    """The file ``rel`` of ``a``'s student folder as it lies in solutions/ (which mirrors starter/)."""
    return Path(root).parent / "solutions" / a.name / rel


def reference_path(a: Assignment, root: Path = ASSIGNMENTS_DIR) -> Path:
    """Where the reference solution of ``a``'s module lies."""
    return solution_path(a, a.module, root)

"""Grade one submission: load it, run its probes in the sandbox, run the checks, collect results.

Student mistakes become failed tests with messages; only a fault in the grader
itself (a check that raised) is flagged as ``grader_error``.
"""
from __future__ import annotations

import shutil
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import bounded, checks, reference
from .config import Assignment, Part
from .notebook import Extracted, NotebookError
from .paths import REPO_ROOT
from .sandbox import Limits, ProbeOutcome, run_probes
from .submission import Submission, SubmissionError, load_submission, submission_name

FAILED_PROBE = {
    "error": "{msg}",
    "timeout": "{msg}",
    "crashed": "{msg}",
    "missing": "no result: {msg}",
}


@dataclass
class TestResult:
    """One row of results.json."""

    name: str
    number: str
    tags: list[str]              # the student function(s) exercised
    score: float
    max_score: float
    passed: bool
    output: str
    visibility: str
    manual: bool = False
    manual_points: float = 0.0   # points a person grades (manual items only)


@dataclass
class GradeResult:
    """Everything a report needs about one graded submission."""

    assignment: str
    submission: str
    sha256: str
    tests: list[TestResult]
    status: str                  # ok | error | timeout | crashed | invalid (worst part outcome)
    execution_time: float
    layers: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)   # submission-level messages
    grader_errors: list[str] = field(default_factory=list)  # tracebacks for staff

    @property
    def score(self) -> float:
        return sum(t.score for t in self.tests if not t.manual)

    @property
    def max_score(self) -> float:
        return sum(t.max_score for t in self.tests if not t.manual)

    def to_dict(self) -> dict:
        """Plain data (JSON-ready), for the batch cache."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> GradeResult:
        """The inverse of :meth:`to_dict`."""
        return cls(**{**data, "tests": [TestResult(**t) for t in data["tests"]]})


def probe_args(assignment: Assignment, part: Part) -> dict:
    """Arguments of a part's probe: the function, the assignment's seed, and the part's extras."""
    return {"function": part.function, "seed": assignment.seed, **(part.args or {})}


PARENT_PROBES = ("answers",)   # parts graded from data alone, in the parent: no student code runs


def _probes(assignment: Assignment) -> list[dict]:
    return [{"id": part.key, "kind": part.probe, "args": probe_args(assignment, part)}
            for part in assignment.parts if part.probe not in PARENT_PROBES]


def _notebook_module(files_dir: Path, assignment: Assignment) -> tuple[str, dict[str, str], list[str]]:
    """Write the module extracted from the student's notebook; (its path, notes per function, problems).

    The notebook is parsed in a bounded helper process (:mod:`grader.bounded`).

    Raises:
        NotebookError: the file is not a readable notebook, or too large to read.
    """
    graded = [p.function for p in assignment.parts]
    try:
        plain = bounded.call("extract_notebook", path=str(files_dir / assignment.module), graded=graded)
    except bounded.InputTooLarge as err:
        raise NotebookError(str(err)) from err
    ex = Extracted(source=plain["source"], cells=plain["cells"], problems=plain["problems"])
    module = Path(assignment.module).with_suffix(".py").as_posix()
    (files_dir / module).write_text(ex.source, encoding="utf-8", errors="replace")
    notes = {f: ex.notes(f) for f in graded if ex.notes(f)}
    return module, notes, ex.problems


def _fill_support(files_dir: Path, assignment: Assignment) -> None:
    """Add starter files the submission lacks (never the required files themselves)."""
    if not assignment.support_dir:
        return
    support = REPO_ROOT / assignment.support_dir
    if not support.is_dir():
        return
    for f in support.rglob("*"):
        rel = f.relative_to(support)
        if f.is_file() and rel.as_posix() not in assignment.required_files and rel.suffix == ".py":
            dest = files_dir / rel
            if not dest.exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, dest)


def _prepare_checks(assignment: Assignment, public_only: bool) -> None:
    """Import the checks, and load the reference while the worker runs (a notebook takes seconds)."""
    checks.load_plugins()
    if not public_only:
        try:
            reference.load(assignment.module)
        except Exception:  # noqa: BLE001 - absent in a student bundle; a check will say so if it needs it
            pass


def _status(outcomes: dict[str, ProbeOutcome]) -> str:
    """The worst probe outcome: crashed > timeout > error (student code raised) > ok."""
    statuses = {o.status for o in outcomes.values()}
    for s, label in (("crashed", "crashed"), ("missing", "crashed"), ("timeout", "timeout"), ("error", "error")):
        if s in statuses:
            return label
    return "ok"


def grade(assignment: Assignment, path: Path, *, public_only: bool = False,
          limits: Limits | None = None, name: str | None = None, hidden: tuple[Path, ...] = ()) -> GradeResult:
    """Grade the submission at ``path`` (zip, folder or file); never raises for student errors.

    ``hidden``: paths student code must never reach besides the repository and
    the upload itself (a class's other uploads, the output folder).
    """
    start = time.monotonic()
    limits = limits or Limits(timeout_s=assignment.probe_timeout_s)
    sub: Submission | None = None
    try:
        sub = load_submission(path, assignment.required_files, assignment.optional_files)
    except SubmissionError as err:
        tests = all_failed(assignment, f"the submission could not be read: {err}", public_only)
        return GradeResult(assignment.name, name or submission_name(path), "", tests, "invalid",
                           time.monotonic() - start, problems=[str(err)])
    try:
        if sub.problems:
            msg = "; ".join(sub.problems)
            tests = all_failed(assignment, msg, public_only)
            return GradeResult(assignment.name, name or sub.name, sub.sha256, tests, "invalid",
                               time.monotonic() - start, problems=sub.problems)
        _fill_support(sub.files_dir, assignment)
        module, notes, nb_problems = assignment.module, {}, []
        if assignment.module.endswith(".ipynb"):
            try:
                module, notes, nb_problems = _notebook_module(sub.files_dir, assignment)
            except NotebookError as err:
                msg = f"{assignment.module}: {err}"
                return GradeResult(assignment.name, name or sub.name, sub.sha256,
                                   all_failed(assignment, msg, public_only), "invalid",
                                   time.monotonic() - start, problems=[msg])
        # import the checks (and torch) while the worker imports its own copy: two cores, half the wait
        loader = threading.Thread(target=_prepare_checks, args=(assignment, public_only), daemon=True)
        loader.start()
        run = run_probes(sub.files_dir, module, _probes(assignment), REPO_ROOT, limits,
                         display=assignment.module, hidden=(Path(path), *hidden))
        for part in assignment.parts:
            if part.probe in PARENT_PROBES:
                run.outcomes[part.key] = ProbeOutcome(part.key, "ok")
        loader.join()
        tests, errors = _run_checks(assignment, run.outcomes, public_only, sub.files_dir)
        for t in tests:
            if t.tags and t.tags[0] in notes:
                t.output = f"{t.output}\n({notes[t.tags[0]]})".strip()
        return GradeResult(assignment.name, name or sub.name, sub.sha256, tests, _status(run.outcomes),
                           time.monotonic() - start, layers=run.layers, grader_errors=errors,
                           problems=nb_problems)
    finally:
        if sub is not None:
            sub.cleanup()


def _selected(assignment: Assignment, public_only: bool):
    """(number, part, test, check function) for every test that runs in this mode."""
    for part in assignment.parts:
        for j, test in enumerate(part.tests, 1):
            if public_only and not test.public:
                continue
            fn = checks.get(test.check)
            if fn is None and public_only:
                continue
            yield f"{part.name}.{j}", part, test, fn


def all_failed(assignment: Assignment, message: str, public_only: bool) -> list[TestResult]:
    """Every test of the assignment failed with ``message`` (an unreadable upload, a grader fault)."""
    tests = [TestResult(f"{part.function}: {test.name}", num, [part.function], 0.0,
                        test.points, False, message, test.visibility)
             for num, part, test, _ in _selected(assignment, public_only)]
    return tests + ([] if public_only else _manual(assignment))


def _manual(assignment: Assignment) -> list[TestResult]:
    return [TestResult(f"{m.name} (graded by course staff)", m.name.split()[0] if m.name[:1].isdigit() else f"M{i}",
                       ["manual"], 0.0, 0.0, True,
                       f"Graded by hand: {m.points:g} {'bonus ' if m.bonus else ''}points. {m.description}".strip(), "visible",
                       manual=True, manual_points=m.points)
            for i, m in enumerate(assignment.manual, 1)]


def _run_checks(assignment: Assignment, outcomes: dict[str, ProbeOutcome], public_only: bool,
                files_dir: Path | None = None) -> tuple[list[TestResult], list[str]]:
    tests, errors = [], []
    contexts: dict[str, checks.CheckContext] = {}
    invalid: dict[str, str | None] = {}
    for num, part, test, fn in _selected(assignment, public_only):
        outcome = outcomes[part.key]
        title = f"{part.function}: {test.name}"
        if outcome.status != "ok":
            msg = FAILED_PROBE[outcome.status].format(msg=outcome.message)
            if outcome.log_tail.strip():
                msg += "\n\nLast output of your code:\n" + outcome.log_tail.strip()[-800:]
            tests.append(TestResult(title, num, [part.function], 0.0, test.points, False, msg, test.visibility))
            continue
        if fn is None:
            errors.append(f"check {test.check!r} is not registered")
            tests.append(TestResult(title, num, [part.function], 0.0, test.points, False,
                                    "Autograder error: this check is not available; course staff have been told.",
                                    test.visibility))
            continue
        args = probe_args(assignment, part)
        if part.key not in invalid:
            try:
                invalid[part.key] = checks.validate(part.probe, outcome.arrays, args)
            except Exception as err:  # noqa: BLE001 - forged arrays (inf shapes, ...) are the student's
                invalid[part.key] = f"{type(err).__name__} while reading them"
        problem = invalid[part.key]
        if problem:
            tests.append(TestResult(title, num, [part.function], 0.0, test.points, False,
                                    f"the code returned malformed results ({problem})", test.visibility))
            continue
        ctx = contexts.setdefault(part.key, checks.CheckContext(assignment, part, outcome, args))
        ctx.test_args, ctx.files_dir = dict(test.args or {}), files_dir
        try:
            res = fn(ctx)
        except Exception:  # noqa: BLE001 - a grader fault must not cost the other tests
            errors.append(f"{title}:\n{traceback.format_exc()}")
            res = checks.CheckResult(False, "Autograder error while checking this part; course staff have been told.")
        tests.append(TestResult(title, num, [part.function], test.points if res.passed else 0.0,
                                test.points, res.passed, res.message, test.visibility))
    return tests + ([] if public_only else _manual(assignment)), errors

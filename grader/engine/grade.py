"""Grade one submission, as a pipeline of named stages.

    load       normalise the upload (a bounded helper reads it) into a private folder
    extract    a notebook becomes an importable module (parsed within bounds)
    probe      the assignment's probes run on the student's code in the sandbox
    validate   each probe's arrays are checked against the schema it declares
    check      the assignment's checks judge them; results carry message and hint as fields

Student mistakes become failed tests with messages; only a fault in the grader
itself (a check that raised) is flagged as ``grader_error``.
"""
from __future__ import annotations

import re
import shutil
import threading
import time
import traceback
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from ..sandbox import bounded
from ..sandbox import runner as sandbox
from ..sandbox.probing import validate
from ..sandbox.runner import Limits, ProbeCode, ProbeOutcome, run_probes
from .assignment import SANDBOX_MODULES, available, load, package
from .checks import CheckContext, CheckResult, Outputs
from .config import Assignment, Part
from .notebook import Extracted, NotebookError, extract_plain
from .paths import REPO_ROOT
from .results import GradeResult, TestResult
from .submission import (
    Submission,
    SubmissionError,
    compile_sources,
    load_submission,
    submission_name,
)

NO_FUNCTION = re.compile(r"defines no function named '(\w+)'")


def probe_args(assignment: Assignment, part: Part) -> dict:
    """Arguments of a part's probe: the function, the assignment's seed, and the part's extras."""
    return {"function": part.function, "seed": assignment.seed, **(part.args or {})}


def probe_code(assignment: Assignment) -> ProbeCode:
    """The trusted code the sandbox needs: every assignment's fixtures and probes, as one package
    (worked out once per assignment and state of its starter: every submission asks)."""
    root = Path(assignment.folder).parent
    files = tuple(f"{name}/{m}.py" for name in available(root) for m in SANDBOX_MODULES
                  if (root / name / f"{m}.py").is_file())
    starter = REPO_ROOT / assignment.starter / assignment.module
    try:
        st = starter.stat()
        state: tuple | None = (st.st_mtime_ns, st.st_size)
    except OSError:
        state = None
    key = (assignment.name, str(root), files, state)
    with _CODE_LOCK:
        code = _CODE.get(key) if state is not None else None
    if code is None:
        code = ProbeCode.for_starter(package(root), root, files, starter_source(assignment))
        with _CODE_LOCK:
            _CODE[key] = code
    return code


_CODE: dict[tuple, ProbeCode] = {}
_CODE_LOCK = threading.Lock()


def starter_source(assignment: Assignment, root: Path = REPO_ROOT) -> bytes:
    """The Python source of the starter's graded module (public; a notebook's code cells), or b"".

    Its imports tell the zygote which libraries to load before it forks (see
    :func:`grader.sandbox.runner.start_zygote`)."""
    path = root / assignment.starter / assignment.module
    try:
        if path.suffix == ".ipynb":
            from .notebook import extract

            return extract(path.read_text(encoding="utf-8"), []).source.encode()
        return path.read_bytes()
    except (OSError, ValueError, NotebookError):
        return b""


def start_zygote(names: list[str]) -> None:
    """Fork the worker zygote now, with the libraries of these assignments' starters loaded
    (call before anything secret is read; see :func:`grader.sandbox.runner.start_zygote`)."""
    from .assignment import read
    from .config import ConfigError

    sources = []
    for name in names:
        try:
            sources.append(starter_source(read(name)))
        except ConfigError:
            pass   # an unknown name: the command says so itself
    sandbox.start_zygote(tuple(sources))


def prewarm(assignment: Assignment) -> None:
    """Start a worker server for ``assignment`` (and a bounded helper, which reads the upload) before
    the grader imports torch, so that they start side by side."""
    bounded.prestart()
    sandbox.prewarm(REPO_ROOT, Limits(timeout_s=assignment.probe_timeout_s), probe_code(assignment))


def _probes(assignment: Assignment, public_only: bool = False) -> list[dict]:
    """The probe requests for the parts that have a test in this mode (a check skips the hidden-only ones)."""
    out = []
    for part in assignment.parts:
        if part.probe in ("answers",) or (public_only and not any(t.public for t in part.tests)):
            continue
        owner, kind = part.probe.split(".", 1)
        out.append({"id": part.key, "module": f"{owner}.probes", "kind": kind,
                    "args": probe_args(assignment, part)})
    return out


# --------------------------------------------------------------------------- stages


AT_LINE = re.compile(r"\(at (?P<file>[^,()\n]+), line (?P<line>\d+): ")


def _cells_for_lines(message: str, module: str, notebook: str, lines: list[list[int]]) -> str:
    """The worker's "(at gan_1d.py, line 12: ...)" in a notebook's extracted module, as the student's
    own "(at gan_1d.ipynb, cell 5: ...)"."""
    from .notebook import cell_of

    def cell(m: re.Match) -> str:
        number = cell_of(lines, int(m["line"])) if m["file"] == module else None
        return m[0] if number is None else f"(at {notebook}, cell {number}: "
    return AT_LINE.sub(cell, message)


def _extract(files_dir: Path, assignment: Assignment) -> tuple[str, dict[str, str], list[str], list[list[int]]]:
    """Write the module extracted from the student's notebook; (its path, notes per function, problems,
    [first line, last line, cell] of the module).

    Raises:
        NotebookError: the file is not a readable notebook, or too large to read.
    """
    graded = [p.function for p in assignment.parts]
    try:
        plain = bounded.call(extract_plain, path=str(files_dir / assignment.module), graded=graded)
    except bounded.InputTooLarge as err:
        raise NotebookError(str(err)) from err
    ex = Extracted(source=plain["source"], cells=plain["cells"], problems=plain["problems"])
    module = Path(assignment.module).with_suffix(".py").as_posix()
    (files_dir / module).write_text(ex.source, encoding="utf-8", errors="replace")
    notes = {f: ex.notes(f) for f in graded if ex.notes(f)}
    return module, notes, ex.problems, plain.get("lines", [])


def _compile_once(files_dir: Path) -> None:
    """Compile the submission's Python files once (in a bounded helper) so that no probe compiles
    them again; when that fails, each probe compiles for itself, as before."""
    try:
        bounded.call(compile_sources, folder=str(files_dir))
    except (bounded.InputTooLarge, RuntimeError):
        pass


def _fill_support(files_dir: Path, assignment: Assignment) -> None:
    """Add starter files the submission lacks (never the required files themselves)."""
    repo = Path(assignment.folder).parent.parent
    support = repo / assignment.starter
    sources = {f.relative_to(support).as_posix(): f for f in support.rglob("*.py")} if support.is_dir() else {}
    for rel, src in sources.items():
        dest = files_dir / rel
        if rel not in assignment.required_files and rel.endswith(".py") and src.is_file() and not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)


def _warm_reference(assignment: Assignment, public_only: bool) -> None:
    """Load the reference while the worker runs (a notebook takes seconds)."""
    if not public_only:
        try:
            from . import reference  # torch: not before the sandbox's server has started

            reference.load_module(assignment)
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
          limits: Limits | None = None, name: str | None = None, hidden: tuple[Path, ...] = (),
          probe_slot: AbstractContextManager | None = None) -> GradeResult:
    """Grade the submission at ``path`` (zip, folder or file); never raises for student errors.

    ``hidden``: paths student code must never reach besides the repository and
    the upload itself (a class's other uploads, the output folder).
    ``probe_slot``: held while the probes run (a batch's semaphore: as many submissions in the
    sandbox as it has worker servers, while others are loaded or checked beside them).
    """
    start = time.monotonic()
    limits = limits or Limits(timeout_s=assignment.probe_timeout_s)
    sub: Submission | None = None

    def invalid(message: str, sha: str = "", shown: str | None = None) -> GradeResult:
        tests = all_failed(assignment, message, public_only)
        return GradeResult(assignment.name, name or shown or submission_name(path), sha, tests, "invalid",
                           time.monotonic() - start, problems=[message])

    try:                                                                       # load
        sub = load_submission(path, assignment.required_files, assignment.submitted_globs)
    except SubmissionError as err:
        return invalid(f"the submission could not be read: {err}")
    try:
        if sub.problems:
            return invalid("; ".join(sub.problems), sub.sha256, sub.name)
        _fill_support(sub.files_dir, assignment)
        module, notes, nb_problems, lines = assignment.module, {}, [], []
        if assignment.notebook:                                                # extract
            try:
                module, notes, nb_problems, lines = _extract(sub.files_dir, assignment)
            except NotebookError as err:
                return invalid(f"{assignment.module}: {err}", sub.sha256, sub.name)
        _compile_once(sub.files_dir)
        warm = threading.Thread(target=_warm_reference, args=(assignment, public_only), daemon=True)
        warm.start()
        with probe_slot or nullcontext():                                      # probe
            run = run_probes(sub.files_dir, module, _probes(assignment, public_only), REPO_ROOT, limits,
                             display=assignment.module, hidden=(Path(path), *hidden), code=probe_code(assignment))
        for part in assignment.parts:
            if part.probe == "answers":
                run.outcomes[part.key] = ProbeOutcome(part.key, "ok")
        _explain_missing_functions(assignment, run.outcomes, sub.files_dir / module)
        if lines:
            for o in run.outcomes.values():
                o.message = _cells_for_lines(o.message, module, assignment.module, lines)
        warm.join()
        tests, errors = run_checks(assignment, run.outcomes, public_only, sub.files_dir)  # validate, check
        stops = _stops(tests)
        for t in tests:
            if t.tags and t.tags[0] in notes:
                t.output = f"{t.output}\n({notes[t.tags[0]]})".strip()
        return GradeResult(assignment.name, name or sub.name, sub.sha256, tests, _status(run.outcomes),
                           time.monotonic() - start, layers=run.layers, grader_errors=errors,
                           problems=nb_problems, stops=stops,
                           timeouts=sorted(k for k, o in run.outcomes.items() if o.status == "timeout"))
    finally:
        if sub is not None:
            sub.cleanup()


def _stops(tests: list[TestResult]) -> list[str]:
    """Each problem that stopped the student's code before its tests could judge it (an import or syntax
    error, a missing function, a crash, a timeout), once, with the functions it stopped; each test it
    stopped records which, so reports state it first and point there instead of repeating it."""
    stops: dict[str, list[str]] = {}
    for t in tests:
        if t.stopped:
            fns = stops.setdefault(t.output, [])
            if t.tags and t.tags[0] not in fns:
                fns.append(t.tags[0])
    order = list(stops)
    for t in tests:
        if t.stopped:
            t.stopped = order.index(t.output) + 1
    return [f"{message}\n(stopped the tests of {', '.join(fns)})" for message, fns in stops.items()]


def _explain_missing_functions(assignment: Assignment, outcomes: dict[str, ProbeOutcome], source: Path) -> None:
    """When graded functions are missing, say which other assignment the file's functions fit.

    Two versions of a course may name the same homework's functions differently
    (one function per loss, or one returning both): the student then learns
    where to submit, not just that a name is missing.
    """
    missing = {o.probe for o in outcomes.values() if o.status == "error" and NO_FUNCTION.search(o.message)}
    if not missing:
        return
    try:
        with open(source, encoding="utf-8", errors="replace") as f:
            text = f.read(2 << 20)
    except OSError:
        return
    defined = set(re.findall(r"^def\s+(\w+)\s*\(", text, re.M))
    root = Path(assignment.folder).parent
    for other in available(root):
        if other == assignment.name:
            continue
        try:
            theirs = load(other, root)
        except Exception:  # noqa: BLE001 - a broken neighbour must not cost this student anything
            continue
        if theirs.module != assignment.module:
            continue
        fits = [f for f in theirs.graded_functions if f in defined]
        if fits and len(fits) >= len(theirs.graded_functions) / 2:
            note = (f"{assignment.module} defines {', '.join(fits)}: the functions of the {other} assignment "
                    f"({theirs.title}), not those of {assignment.name}. Submit it to {other} "
                    f"(grader check --assignment {other}), or write the functions this assignment asks for.")
            for o in outcomes.values():
                if o.probe in missing:
                    o.message = f"{o.message}\n{note}"
            return


def _selected(assignment: Assignment, public_only: bool):
    """(number, part, test, check spec or None) for every test that runs in this mode."""
    for part in assignment.parts:
        for j, test in enumerate(part.tests, 1):
            if public_only and not test.public:
                continue
            yield f"{part.name}.{j}", part, test, assignment.checks.get(test.check)


def all_failed(assignment: Assignment, message: str, public_only: bool) -> list[TestResult]:
    """Every test of the assignment failed with ``message`` (an unreadable upload, a grader fault)."""
    tests = [TestResult(f"{part.function}: {test.name}", num, [part.function], 0.0,
                        test.points, False, message, test.visibility)
             for num, part, test, _ in _selected(assignment, public_only)]
    return tests + ([] if public_only else _manual(assignment))


def _manual(assignment: Assignment) -> list[TestResult]:
    return [TestResult(f"{m.name} (graded by course staff)", m.name.split()[0] if m.name[:1].isdigit() else f"M{i}",
                       ["manual"], 0.0, 0.0, True,
                       f"Graded by hand: {m.points:g} {'bonus ' if m.bonus else ''}points. {m.description}".strip(),
                       "visible", manual=True, manual_points=m.points, bonus=m.bonus)
            for i, m in enumerate(assignment.manual, 1)]


def _failed_probe(outcome: ProbeOutcome) -> str:
    msg = outcome.message if outcome.status != "missing" else f"no result: {outcome.message}"
    if outcome.log_tail.strip():
        msg += "\n\nLast output of your code:\n" + outcome.log_tail.strip()[-800:]
    return msg


def run_checks(assignment: Assignment, outcomes: dict[str, ProbeOutcome], public_only: bool,
               files_dir: Path | None = None) -> tuple[list[TestResult], list[str]]:
    """The validate and check stages: one TestResult per test, and tracebacks of grader faults."""
    tests, errors = [], []
    contexts: dict[str, CheckContext] = {}
    invalid: dict[str, str | None] = {}
    for num, part, test, spec in _selected(assignment, public_only):
        outcome = outcomes[part.key]
        title = f"{part.function}: {test.name}"
        result = _row(title, num, part, test)

        if outcome.status != "ok":
            tests.append(result(CheckResult(False, _failed_probe(outcome))))
            tests[-1].stopped = 1   # numbered by _stops
            continue
        if spec is None:
            errors.append(f"check {test.check!r} is not available")
            tests.append(result(CheckResult(False, "Autograder error: this check is not available; "
                                                   "course staff have been told.")))
            continue
        args = probe_args(assignment, part)
        if part.key not in invalid:
            invalid[part.key] = _validate(assignment, part, outcome, args)
        if invalid[part.key]:
            tests.append(result(CheckResult(False, f"the code returned malformed results ({invalid[part.key]})")))
            continue
        ctx = contexts.setdefault(part.key, CheckContext(assignment, part, {}, args, files_dir=files_dir))
        ctx.outputs = Outputs(outcome.arrays, spec.reads, test.check)
        ctx.test_args = dict(test.args or {})
        try:
            res = spec.fn(ctx)
        except Exception:  # noqa: BLE001 - a grader fault must not cost the other tests
            errors.append(f"{title}:\n{traceback.format_exc()}")
            res = CheckResult(False, "Autograder error while checking this part; course staff have been told.")
        tests.append(result(res))
    return tests + ([] if public_only else _manual(assignment)), errors


def _row(title: str, num: str, part: Part, test):
    """A function turning a CheckResult into this test's TestResult."""
    def row(res: CheckResult) -> TestResult:
        return TestResult(title, num, [part.function], test.points if res.passed else 0.0, test.points,
                          res.passed, res.message, test.visibility, hint=res.hint)
    return row


def _validate(assignment: Assignment, part: Part, outcome: ProbeOutcome, args: dict) -> str | None:
    """None when the probe's arrays fit its declared schema, else what is wrong."""
    if part.probe == "answers":
        return None if not outcome.arrays else "unexpected arrays"
    try:
        return validate(assignment.probes[part.probe].outputs, outcome.arrays, args)
    except Exception as err:  # noqa: BLE001 - forged arrays (inf shapes, ...) are the student's
        return f"{type(err).__name__} while reading them"

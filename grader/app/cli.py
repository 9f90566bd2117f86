"""The ``grader`` command: check, grade, release, autograder, new, demo.

Each command is a thin parser over a keyword-only ``run_*`` function. Exit
status: ``grade`` 0 when grading completed (whatever the scores); ``check`` 0
when every public check passed and 1 when one failed (like pytest); 2 for a
usage error; 3 when the grader itself failed on some test (results are still
written). Heavy modules (torch) are imported by the commands that need them,
so ``grader --help`` and usage errors answer at once.
"""
from __future__ import annotations

import os

# One BLAS and OpenMP thread in the grader's own process (see entry()), set before the imports
# below load numpy: its thread pool reads them once, at load. An explicit setting wins.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from .. import __version__
from ..engine.assignment import available, load_assignment
from ..engine.config import Assignment, ConfigError
from ..sandbox.isolation import Plan, private_temp, remove_temp

if TYPE_CHECKING:
    from ..engine.results import GradeResult


class UsageError(Exception):
    """Bad command-line input; the message says what is acceptable."""


def printable(text: str) -> str:
    """``text`` with undecodable bytes of a file name shown as U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def submission_name(path: Path) -> str:
    from ..engine.submission import submission_name as name

    return name(path)


def _instructor_only(what: str) -> None:
    """One clear line, not a traceback, when a student bundle is asked for an instructor's command."""
    from ..engine.paths import IS_BUNDLE

    if IS_BUNDLE:
        raise UsageError(f"this is a student bundle: {what} are made in the course repository, not here. "
                         "Students use: grader check, and ./make_submission.sh")


def _assignment(name: str | None, path: Path | None = None, warm: bool = False) -> Assignment:
    """The named assignment, or the one whose student file is in (or is) ``path``.

    ``warm``: start a worker server from the assignment.yaml alone, before loading
    its checks imports torch, so the two imports run side by side.
    """
    from ..engine.assignment import guess, read

    if not name:
        found = guess(path) if path is not None else []
        if not found:
            raise UsageError(f"cannot tell which assignment {path} is for: no assignment's student file is "
                             f"there; run it in your assignment folder, or pass --assignment ({', '.join(available())})")
        name = found[0].name
    if warm:
        from ..engine.grade import prewarm

        prewarm(read(name))
    return load_assignment(name)


_SAID: list[bool] = []


def say_isolation(student: bool = False) -> None:
    """Print the isolation in force, once per command, as grading starts (on stderr); for a student's
    ``grader check``, only when it is weaker than running their own code as themselves."""
    from ..sandbox.isolation import plan

    if _SAID:
        return
    _SAID.append(True)
    line = student_isolation(plan()) if student else plan().summary()
    if line:
        print(f"grader: {line}", file=sys.stderr)


def student_isolation(p: Plan) -> str | None:
    """A few words for a student, or None: their code runs as themselves in a separate process with
    a timeout, as they expect, unless it runs as root with nothing in between or without resource caps."""
    from ..sandbox.isolation import is_root

    if p.barrier == "none" and is_root():
        return "your code runs as root, unsandboxed"
    if os.name != "posix":
        return "no memory or process caps on this system (timeouts only)"
    return None


def _is_output_folder(folder: Path, out: Path | None) -> bool:
    """True for the output folder of this run or of an earlier one (never graded as a submission)."""
    if out is not None and folder.resolve() == out.resolve():
        return True
    return (folder / "grades.csv").is_file() and (folder / "summary.md").is_file()


def expand_submissions(paths: list[Path], assignment: Assignment, out: Path | None = None) -> list[Path]:
    """Each path is one submission, or a folder of many (zips or folders, as an LMS exports them).

    An output folder of the grader (this run's ``out``, or any folder holding a
    ``grades.csv`` and ``summary.md``) inside a folder of submissions is skipped.
    """
    result: list[Path] = []
    for p in paths:
        if not p.exists():
            raise UsageError(f"{printable(str(p))} does not exist")
        if p.is_dir() and not _is_single(p, assignment):
            children = sorted(c for c in p.iterdir() if not c.name.startswith(".")
                              and (c.is_dir() or c.suffix.lower() in (".zip", ".py", ".ipynb"))
                              and not (c.is_dir() and _is_output_folder(c, out)))
            if not children:
                raise UsageError(f"{printable(str(p))} holds no submissions (zips or folders)")
            result += children
        else:
            result.append(p)
    return result


RESERVED_NAMES = {"grades.csv", "summary.md", "summary.png"}   # files the batch writes beside the folders


def unique_names(paths: list[Path]) -> list[str]:
    """Report names for the submissions, all different (ignoring case), so no output is overwritten.

    A repeated name gets -2, -3, ...; a generated name never equals the name of
    another upload (``alice``, ``alice.zip`` and ``alice-2`` become alice,
    alice-3 and alice-2). In a Gradescope export (``submission_<id>`` folders)
    the submitters' emails are used.
    """
    from ..engine.submission import export_names
    from . import report

    exports: dict[Path, dict[str, str]] = {}
    bases = []
    for p in paths:
        people = exports.setdefault(p.parent, export_names(p.parent))
        base = report.safe_name(people.get(p.name) or submission_name(p))
        bases.append(base if base.lower() not in RESERVED_NAMES else base + "_")
    reserved = {b.lower() for b in bases}
    taken: set[str] = set()
    names = []
    for base in bases:
        name, k = base, 1
        while name.lower() in taken or (name != base and name.lower() in reserved):
            k += 1
            name = f"{base}-{k}"
        taken.add(name.lower())
        names.append(name)
    return names


def _is_single(folder: Path, assignment: Assignment) -> bool:
    for rel in assignment.required_files:
        first = Path(rel).parts[0]
        if (folder / rel).exists() or (folder / Path(rel).name).exists() or (folder / first).is_dir():
            return True
    return False


def run_grade(*, assignment: Assignment, submissions: list[Path], out: Path, jobs: int = 1,
              quiet: bool = False, make_zip: bool = False, force: bool = False) -> list[GradeResult]:
    """Grade submissions into ``out``: results.json and feedback.md each, then grades.csv,
    summary.md and, for two or more submissions, summary.png (and ``out``.zip of all of it with
    ``make_zip``).

    Submissions graded before by the same grader from the same upload are not
    graded again unless ``force``.
    """
    from . import report
    from .batch import grade_all

    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; name a folder for the reports")
    paths = expand_submissions(submissions, assignment, out)
    names = unique_names(paths)
    out.mkdir(parents=True, exist_ok=True)
    if not quiet:
        say_isolation()
    final = grade_all(assignment, paths, names, out, jobs=jobs, force=force, quiet=quiet)
    report.grades_csv(final, out / "grades.csv")
    report.write_atomic(out / "summary.md", report.summary(final))
    if len(final) > 1:   # a distribution needs a class; for one submission, feedback.md says it all
        report.summary_png(final, out / "summary.png")
    else:
        (out / "summary.png").unlink(missing_ok=True)   # an earlier class's plot would not describe this run
    if make_zip:
        report.zip_all(out, out.with_name(out.name + ".zip"))
    return final


def _check_folder(path: Path, a: Assignment) -> tuple[Path, Path | None]:
    """The folder to check for ``path``, and a temporary folder to remove after (or None).

    Given the student file itself (``codebase/gan.py``, ``vae_wake_sleep.ipynb``,
    even renamed), the folder around it is checked as the submission would be:
    the file at its place, with the answers file and outputs next to it.
    """
    if path.is_dir() or path.suffix.lower() == ".zip":
        return path, None
    depth = len(Path(a.module).parts)
    parts = path.parts
    root = path.parents[depth - 1] if parts[-depth:] == Path(a.module).parts else path.parent
    tmp = private_temp("dgm-check-")
    dest = tmp / a.module
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, dest)
    for rel in a.required_files:
        if rel != a.module and (root / rel).is_file():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / rel, tmp / rel)
    for pattern in a.submitted_globs:
        for f in root.glob(pattern):
            if f.is_file() and not f.is_symlink():
                (tmp / f.relative_to(root)).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, tmp / f.relative_to(root))
    return tmp, tmp


def run_check(*, assignment: Assignment, path: Path) -> GradeResult:
    """Public checks only, for students: each test, a message for each failure, notes, and what is
    left to answer. Returns the result (the caller exits 1 when a check failed)."""
    from ..engine.grade import grade
    from .report import plain, stop_lines, test_output

    folder, tmp = _check_folder(path, assignment)
    say_isolation(student=True)
    try:
        r = grade(assignment, folder, public_only=True, name=submission_name(path))
    finally:
        if tmp is not None:
            remove_temp(tmp)
    print(f"grader check: {assignment.name} ({plain(printable(str(path)))})")
    for stop in stop_lines(r.stops):   # stated once, first; the tests it stopped point here
        first = "  ! "
        for line in plain(stop).strip().splitlines():
            print_wrapped(line, first, "    ")
            first = "    "
    shown: set[tuple[str, str]] = set()
    for t in r.tests:
        print(f"  {'PASS' if t.passed else 'FAIL'}  {t.name}")
        text = test_output(t, r.stops) if not t.passed else t.hint
        key = ("", text) if t.stopped and r.stops else (t.tags[0], text)
        if text and key not in shown:  # one message per function when its tests share it (a stop: once)
            shown.add(key)
            first = "        " + ("" if not t.passed else "note: ")
            for line in plain(text).strip().splitlines():   # student text: no terminal escapes
                print_wrapped(line, first, "        " + " " * (len(line) - len(line.lstrip())))
                first = "        "
    for p in r.problems:
        print_wrapped(plain(p), "  ! ", "    ")
    passed = sum(t.passed for t in r.tests)
    points = f" ({r.score:g} of the {r.max_score:g} points they carry)" if r.max_score else ""
    print_wrapped(f"{passed}/{len(r.tests)} public checks passed{points} in {r.execution_time:.1f} s.", "", "")
    print(check_total(assignment))
    return r


def check_total(a: Assignment) -> str:
    """The assignment's points when submitted: "N of M graded automatically, K more by staff"."""
    staff = sum(m.points for m in a.manual if not m.bonus)
    bonus = sum(m.points for m in a.manual if m.bonus)
    text = f"When you submit: {a.auto_points:g} of {a.total:g} points graded automatically"
    if staff:
        text += f", {staff:g} more by staff"
    return text + (f" (and a {bonus:g}-point bonus)." if bonus else ".")


def demo_totals(a: Assignment) -> str:
    """Why the demo's scores are out of fewer points than the statement gives, or "" when they are not."""
    staff = sum(m.points for m in a.manual if not m.bonus)
    if not staff:
        return ""
    return (f"Scores are out of the {a.auto_points:g} points graded automatically; the statement's "
            f"{a.total:g} also count {staff:g} graded by course staff.")


def print_wrapped(text: str, first: str, rest: str, width: int = 100) -> None:
    """Print ``text`` wrapped at word boundaries, ``first`` before its first line and ``rest`` before the others
    (long words, such as paths, are kept whole rather than cut)."""
    import textwrap

    lines = textwrap.wrap(text, width=max(width, len(first) + 20), initial_indent=first, subsequent_indent=rest,
                          break_long_words=False, break_on_hyphens=False) or [first.rstrip()]
    print("\n".join(lines))


def run_demo(*, out: Path | None = None) -> list[GradeResult]:
    """Grade the example submissions bundled with every assignment and print a table."""
    from ..engine.paths import ASSIGNMENTS_DIR
    from . import report

    names = [n for n in available() if (ASSIGNMENTS_DIR / n / "examples").is_dir()]
    if not names:
        raise UsageError("no example submissions here: the demo runs in the course repository "
                         "(a student bundle has none)")
    out = out or Path(tempfile.mkdtemp(prefix="grader-demo-"))
    jobs = min(2, os.cpu_count() or 1)   # two at a time: the examples train small models
    all_results = []
    for name in names:
        examples = ASSIGNMENTS_DIR / name / "examples"
        a = load_assignment(name)
        subs = sorted(p for p in examples.iterdir() if not p.name.startswith("."))
        print(f"\n== {name}: grading {len(subs)} example submissions ==", file=sys.stderr)
        results = run_grade(assignment=a, submissions=subs, out=out / name, jobs=jobs)
        print(f"\n{name} ({a.title})")
        print(report.table(results, details=True))
        if demo_totals(a):
            print(demo_totals(a))
        all_results += results
    print(f"\nReports (results.json, feedback.md, grades.csv) are in {out}")
    return all_results


def run_release(*, out: Path, assignments: list[str] | None = None) -> int:
    """Write the student bundle; exit status 1 (and nothing written) when it would leak."""
    _instructor_only("student bundles")
    from ..builders.release import LeakError, build

    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; name a new folder for the bundle")
    try:
        files = build(out, assignments=assignments)
    except FileExistsError as err:
        raise UsageError(str(err)) from err
    except LeakError as err:
        print(f"grader release: {err}", file=sys.stderr)
        return 1
    folder = next((f.split("/")[0] for f in files if f.endswith("/make_submission.sh")), "<assignment>")
    print(f"Wrote the student bundle ({len(files)} files) to {out}: a folder per assignment. Students run: "
          f"pip install {out}; cd {out}/{folder}; grader check")
    return 0


def run_autograder(*, assignment: str, out: Path, torch_index: str | None = None) -> int:
    """Write the Gradescope autograder zip for one assignment."""
    _instructor_only("autograders")
    from ..builders.autograder import build

    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; name the zip to write, e.g. {out}/autograder.zip")
    members = build(assignment, out, torch_index=torch_index)
    print(f"Wrote {out} ({len(members)} files): upload it as the assignment's autograder on Gradescope "
          "(Ubuntu 22.04 base image).")
    return 0


def run_new(*, name: str, title: str = "") -> int:
    """Scaffold ``assignments/<name>/`` (and its solution and starter), then say what to do next."""
    _instructor_only("assignments")
    from ..builders.scaffold import create
    from ..engine.paths import REPO_ROOT

    files = create(name, REPO_ROOT, title)
    print(f"Wrote {len(files)} files for the assignment {name}:")
    for f in files:
        print(f"  {f}")
    print(f"Try it: grader grade --assignment {name} --out out/{name} assignments/{name}/examples/\n"
          "Then edit them (docs/authoring.md), and run python -m grader.starter after changing solutions/.")
    return 0


def entry() -> None:
    """Console-script entry: run main, then exit without torch's slow interpreter teardown.

    Every report has been written atomically and closed by then, and every worker
    stopped (even after an error, Ctrl-C or SIGTERM); skipping the teardown saves
    about 0.6 s per command, which students feel on `grader check`. A reader that
    went away (``grader ... | head``) ends the command quietly.

    The checks in this process evaluate tiny arrays: BLAS and OpenMP thread pools
    would only spin against the worker servers and the other grading threads
    (200 gan submissions with --jobs 2 on 2 cores: about 62 s with them, 50 s
    without). They are limited at the top of this module, before numpy loads.
    """
    from ..sandbox.isolation import run_then_clean_up

    def guarded() -> int:
        _clean_start(sys.argv[1:])
        try:
            return main()
        except BrokenPipeError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 1

    code = run_then_clean_up(guarded)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:   # e.g. the reader of a pipe went away
        pass
    os._exit(code)


def _graded_assignments(args: argparse.Namespace) -> list[str]:
    """The assignments a check, grade or demo command grades (public: their names and starters)."""
    from ..engine.assignment import guess

    if args.command == "demo":
        return list(available())
    if args.assignment:
        return [args.assignment]
    path = args.path.resolve()
    return [a.name for a in guess(path)[:1]] if path.exists() else []


def _start_zygote(args: argparse.Namespace) -> None:
    """Refuse to run student code as root with nothing in between, then fork the worker zygote for
    the assignments this command grades (before anything secret is read)."""
    from ..engine.grade import start_zygote
    from ..sandbox.isolation import plan

    p = plan()
    if p.refuses():
        raise UsageError("refusing to run student code as root with no isolation barrier: " + p.why_no_barrier())
    start_zygote(_graded_assignments(args))


def _clean_start(argv: list[str]) -> None:
    """Where worker servers will be forked from a zygote: start over as a process whose environment
    and command line hold nothing of the caller's (see grader.sandbox.forkserver.reexec_clean), fork the
    zygote there first, then take the real arguments back. Elsewhere nothing happens."""
    from ..sandbox import forkserver

    names = forkserver.clean_start()
    if names is not None:
        from ..engine.grade import start_zygote

        start_zygote(names)
        forkserver.restore()
        return
    if not argv or argv[0] not in ("check", "grade", "demo"):
        return
    import contextlib
    import io

    try:   # silently: main() parses again and prints any help or error, once
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            args = _parser().parse_args(argv)
    except SystemExit:
        return
    from ..sandbox.runner import would_fork

    try:
        if would_fork():
            forkserver.reexec_clean("grader", _graded_assignments(args),
                                    huge_pages=args.command in ("grade", "demo"))   # many forks
    except Exception:  # noqa: BLE001 - main() meets the same problem and says what it is
        return


def _parser() -> argparse.ArgumentParser:
    names = ", ".join(available())
    parser = argparse.ArgumentParser(prog="grader", description="dgm-harness: grade deep generative models homework.")
    parser.add_argument("--version", action="version", version=f"dgm-harness {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check", help="student self-check: public checks only, in seconds")
    p.add_argument("--assignment", help=f"assignment name (default: found from PATH); one of {names}")
    p.add_argument("path", nargs="?", default=".", type=Path,
                   help="your folder, your student file (e.g. codebase/gan.py or a notebook), or a submission zip "
                        "(default .)")

    p = sub.add_parser("grade", help="grade submissions into results.json, feedback.md and grades.csv")
    p.add_argument("--assignment", required=True, help=f"one of {names}")
    p.add_argument("--out", default=Path("out"), type=Path, help="output folder (default out/)")
    p.add_argument("--jobs", default=1, type=int, help="submissions graded in parallel (default 1)")
    p.add_argument("--zip", action="store_true", help="also write OUT.zip with everything, for upload")
    p.add_argument("--force", action="store_true",
                   help="grade every submission again, even those unchanged since the last run into OUT")
    p.add_argument("submissions", nargs="+", type=Path, help="zips, folders, or folders of many submissions")

    p = sub.add_parser("release", help="write the student bundle: starter, statements, public checks only")
    p.add_argument("--out", required=True, type=Path, help="a new (or empty) folder for the bundle")
    p.add_argument("--assignment", action="append", help="only this assignment (repeatable; default all)")

    p = sub.add_parser("autograder", help="write a Gradescope autograder zip for one assignment")
    p.add_argument("--assignment", required=True, help=f"one of {names}")
    p.add_argument("--out", default=Path("autograder.zip"), type=Path, help="zip to write (default autograder.zip)")
    p.add_argument("--torch-index", default=None, metavar="URL",
                   help="index setup.sh installs torch from (default: the CPU index; 'pypi': pip's own)")

    p = sub.add_parser("new", help="create a new assignment folder that grades its own examples")
    p.add_argument("name", help="the assignment's name: a lowercase identifier, e.g. flows")
    p.add_argument("--title", default="", help="one line shown in reports")

    p = sub.add_parser("demo", help="grade the bundled example submissions (no network)")
    p.add_argument("--out", default=None, type=Path, help="output folder (default: a temporary folder)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    results: list = []
    try:
        if args.command == "grade":
            _instructor_only("grades")
        if args.command in ("check", "grade", "demo"):
            _start_zygote(args)   # first, while nothing secret is loaded: torch once for grader and servers
        if args.command == "check":
            path = args.path.resolve()
            if not path.exists():
                raise UsageError(f"{printable(str(path))} does not exist")
            r = run_check(assignment=_assignment(args.assignment, path, warm=True), path=path)
            results = [r]
            failed = any(not t.passed for t in r.tests)
        elif args.command == "grade":
            _instructor_only("grades")
            if args.jobs < 1:
                raise UsageError("--jobs must be at least 1")
            from . import report

            results = run_grade(assignment=_assignment(args.assignment, warm=True), submissions=args.submissions,
                                out=args.out, jobs=args.jobs, make_zip=args.zip, force=args.force)
            print(report.table(results))
            print(f"Wrote {args.out}/<submission>/results.json and feedback.md, {args.out}/grades.csv, "
                  + ("summary.md and summary.png" if len(results) > 1 else "summary.md")
                  + (f", and {args.out}.zip" if args.zip else ""))
        elif args.command == "release":
            return run_release(out=args.out, assignments=args.assignment)
        elif args.command == "autograder":
            return run_autograder(assignment=args.assignment, out=args.out, torch_index=args.torch_index)
        elif args.command == "new":
            return run_new(name=args.name, title=args.title)
        else:
            results = run_demo(out=args.out)
    except (UsageError, ConfigError) as err:
        from .report import plain

        print(f"grader: error: {plain(str(err))}", file=sys.stderr)
        return 2
    if any(r.grader_errors for r in results):
        print("grader: the grader itself failed on some tests (see the staff-only entries in results.json)",
              file=sys.stderr)
        return 3
    if args.command == "check" and failed:
        return 1
    return 0

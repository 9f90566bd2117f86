"""Every command the documentation shows works exactly as written.

The commands are read from the fenced blocks of README.md, every statement
(assignments/*/README.md) and the student bundle's README, so a drifted
document fails here. Each runs in a temporary copy: instructor commands in a
copy of the repository (its grader on PYTHONPATH, so `grader new` and
`grader release` write there), student commands in a copy of the student
folder with the reference code filled in and a tiny Fashion-MNIST in
data/FashionMNIST/raw (so a training command as written trains a few steps).
Set-up commands (pip, pytest) are what .ci/run itself runs.
"""
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from grader.engine.paths import REPO_ROOT
from idx import write_idx

SETUP = ("pip ", "pytest", "DGM_NO_BWRAP=1 pytest")   # run by .ci/run itself (network, or the suite)
COMMAND = re.compile(r"^(grader |\./make_submission\.sh|python run_|cd )")


def documented(text: str) -> list[str]:
    """The command lines of the fenced blocks of a Markdown text, comments dropped."""
    out = []
    for block in re.findall(r"```[^\n]*\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith(SETUP) and COMMAND.match(line):
                out.append(line)
    return out


def _run(line: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    argv = shlex.split(line)
    if argv[0] == "grader":
        argv = [sys.executable, "-c", "from grader.app.cli import entry; entry()", *argv[1:]]
    elif argv[0] == "python":
        argv = [sys.executable, *argv[1:]]
    elif argv[0].endswith(".sh"):
        argv = ["bash", *argv]
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _student_folder(tmp: Path, source: Path) -> Path:
    """A student's folder: the starter (or a bundle's), the reference code in it, tiny data beside it."""
    work = tmp / "hw"
    shutil.copytree(source, work)
    solutions = REPO_ROOT / "solutions"
    for f in solutions.rglob("*"):
        rel = f.relative_to(solutions)
        if f.is_file() and f.suffix in (".py", ".ipynb") and (work / rel).is_file():
            shutil.copyfile(f, work / rel)
    for folder in [work, *(p for p in work.iterdir() if p.is_dir() and (p / "make_submission.sh").exists())]:
        write_idx(folder / "data", n_train=128, n_test=32)
    return work


def student_steps(lines: list[str], work: Path, home: Path | None = None) -> list[tuple[Path, str]]:
    """(folder, command) for each of ``lines``, run from ``work`` and following `cd` (from ``home``
    for every `cd`, as the bundle README says: each block starts from the bundle folder)."""
    cwd, steps = work, []
    for line in lines:
        if line.startswith("cd "):
            target = line.split(maxsplit=1)[1]
            cwd = ((home if home is not None else cwd) / target).resolve()
            assert cwd.is_dir(), line
        else:
            steps.append((cwd, line))
    return steps


def run_in_folder(steps: list[tuple[Path, str]], env: dict) -> None:
    """Run the commands of one folder in order, each as written; assert what each promises."""
    for cwd, line in steps:
        before = {f: f.stat().st_mtime for f in cwd.glob("out_*/*.png")}
        proc = _run(line, cwd, env)
        assert proc.returncode == 0, f"{line} (in {cwd.name}): {proc.stdout[-1500:]}\n{proc.stderr[-1500:]}"
        if line.startswith("python run_"):   # a sample grid and the learning curve, written by this run
            new = [f.name for f in cwd.glob("out_*/*.png") if before.get(f) != f.stat().st_mtime]
            assert "learning_curve.png" in new and any(n.startswith("fake_") for n in new), (line, new)
        if line.startswith("./make_submission.sh"):
            zips = list(cwd.glob("*_submission.zip"))
            assert zips and zipfile.ZipFile(max(zips, key=os.path.getmtime)).namelist(), line


def run_by_folder(steps: list[tuple[Path, str]], env: dict) -> None:
    """Each folder's commands in order (a command already run there is run once), the folders two at a
    time: they share nothing, and each command is mostly one process importing torch."""
    from concurrent.futures import ThreadPoolExecutor

    folders: dict[Path, list[tuple[Path, str]]] = {}
    for cwd, line in dict.fromkeys(steps):
        folders.setdefault(cwd, []).append((cwd, line))
    with ThreadPoolExecutor(max_workers=2) as pool:
        for future in [pool.submit(run_in_folder, group, env) for group in folders.values()]:
            future.result()


@pytest.fixture
def env():
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def test_the_readme_and_statements_show_only_commands_that_exist():
    texts = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "assignments").glob("*/README.md"))]
    verbs = {"check", "grade", "release", "autograder", "new", "demo"}
    seen = 0
    for path in texts:
        for line in documented(path.read_text()):
            seen += 1
            if line.startswith("grader "):
                assert shlex.split(line)[1] in verbs, f"{path}: {line}"
    assert seen > 20


@pytest.mark.heavy
def test_the_student_commands_of_the_readme_statements_and_bundle_work_as_written(tmp_path, env):
    """A student's bundle, as a full release ships it (one folder per assignment): the README's student
    commands, each statement's from its assignment's own folder, and the bundle README's (each block's
    ``cd <assignment>`` from the bundle folder)."""
    from grader.builders.release import build
    from grader.engine.assignment import available

    bundle = tmp_path / "bundle"
    build(bundle)
    home = tmp_path / "home"
    home.mkdir()
    work = _student_folder(home, bundle)
    readme = (REPO_ROOT / "README.md").read_text()
    lines = documented(readme[readme.index("## Students"):readme.index("## Layout")])
    assert any(line.startswith("python run_") for line in lines) and "./make_submission.sh" in lines
    steps = student_steps(lines, work)
    for name in available():                      # each statement, from its assignment's own folder
        folder = (work / name).resolve()
        statement = (work / name / "README.md").read_text()
        assert statement == (REPO_ROOT / "assignments" / name / "README.md").read_text()
        steps += student_steps(documented(statement), folder)
    bundle_lines = documented((bundle / "README.md").read_text())
    assert "cd gan_split" in bundle_lines and "grader check" in bundle_lines
    steps += student_steps(bundle_lines, work, home=work)
    assert len({cwd for cwd, _ in steps}) >= 2
    run_by_folder(steps, env)


@pytest.mark.heavy
def test_the_instructor_commands_of_the_readme_work_as_written(tmp_path, env):
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme[readme.index("## Instructors"):readme.index("## Students")]
    lines = documented(section) + documented(readme[:readme.index("## Instructors")])
    assert any(line.startswith("grader grade") for line in lines) and "grader demo" in lines
    repo = tmp_path / "repo"
    for part in ("grader", "assignments", "solutions", "starter", "docs"):
        shutil.copytree(REPO_ROOT / part, repo / part, ignore=shutil.ignore_patterns("__pycache__"))
    for f in ("pyproject.toml", "README.md", "make_submission.sh"):
        shutil.copyfile(REPO_ROOT / f, repo / f)
    env = {**env, "PYTHONPATH": str(repo)}
    # the placeholders the README names: an upload, a class folder, a notebook
    examples = repo / "assignments" / "gan" / "examples"
    (repo / "path" / "to").mkdir(parents=True)
    with zipfile.ZipFile(repo / "path" / "to" / "gan_submission.zip", "w") as zf:
        zf.write(examples / "alice_correct" / "codebase" / "gan.py", "codebase/gan.py")
    shutil.copytree(examples, repo / "submissions")
    shutil.copyfile(repo / "solutions" / "gan1d" / "gan_1d.ipynb", repo / "student.ipynb")
    # `grader new` first (it adds an assignment the demo then grades too); the demo, the longest, beside
    # the others (its reports go to a folder of its own)
    from concurrent.futures import ThreadPoolExecutor

    lines = sorted(lines, key=lambda line: not line.startswith("grader new"))
    with ThreadPoolExecutor(max_workers=1) as pool:
        demo = None
        for line in lines:
            if line == "grader demo":
                demo = pool.submit(_run, line, repo, env)
                continue
            proc = _run(line, repo, env)
            assert proc.returncode == 0, f"{line}: {proc.stdout[-1500:]}\n{proc.stderr[-1500:]}"
        assert demo is not None
        proc = demo.result()
    assert proc.returncode == 0, f"grader demo: {proc.stdout[-1500:]}\n{proc.stderr[-1500:]}"
    demo_out = Path(re.search(r"are in (\S+)", proc.stdout).group(1))
    try:
        check_demo(demo_out, proc.stdout, repo / "assignments")
    finally:
        shutil.rmtree(demo_out, ignore_errors=True)
    assert (repo / "out" / "grades.csv").is_file() and (repo / "autograder.zip").is_file()
    assert (repo / "student-bundle" / "README.md").is_file() and (repo / "assignments" / "flows").is_dir()


def check_demo(out: Path, table: str, assignments: Path) -> None:
    """Every bundled example scores what its name says it shows: a correct one full marks, an
    untouched starter, a crash or the other course version nothing, a mistake something in between."""
    from grader.engine.assignment import available
    from grader.engine.submission import submission_name

    names = [n for n in available(assignments) if (assignments / n / "examples").is_dir()]
    assert len(names) >= 5 and "submission" in table and "score" in table   # ours, and `grader new flows`
    assert ("Scores are out of the 48 points graded automatically; the statement's 140 also count 92 graded "
            "by course staff.") in table   # why gan's totals are not the statement's 140
    for name in names:
        rows = (out / name / "grades.csv").read_text().splitlines()
        head = rows[0].split(",")
        examples = sorted(submission_name(p) for p in (assignments / name / "examples").iterdir()
                          if not p.name.startswith("."))
        assert sorted(r.split(",")[0] for r in rows[1:]) == examples, name
        for row in rows[1:]:
            cells = dict(zip(head, row.split(",")))
            total, top, who = float(cells["total"]), float(cells["max"]), cells["submission"]
            assert who in table
            if "correct" in who.split("_"):
                assert total == top, who
            elif {"untouched", "crashes", "older"} & set(who.split("_")):
                assert total == 0, who
            else:                                 # a mistake: ours lose some points, `grader new`'s all
                assert total < top and (total > 0 or name == "flows"), who

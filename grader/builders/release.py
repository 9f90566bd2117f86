"""Build the student bundle (``grader release``) and refuse to write one that leaks.

The bundle holds one folder per assignment, as in starter/ (what students
edit, the statement, its own ``make_submission.sh``), and an installable copy of
the grader that runs the public checks only; installing it writes nothing into
the bundle (``setup.py`` builds in a temporary folder). Before anything is written, every file of the bundle is
scanned for secrets: solution code (the lines inside ``BEGIN/END SOLUTION``
blocks of ``solutions/``), short-answer keys, files copied from ``solutions/``,
and hidden checks (``assignments/*/hidden.py``, by name and by content).
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..engine.assignment import available, load_assignment
from ..engine.paths import REPO_ROOT
from .starter import ANSWER_LINE, BEGIN, END

HIDDEN_MODULE = re.compile(r"^hidden\.py$")
PUBLIC_MODULES = ("assignment.yaml", "README.md", "fixtures.py", "probes.py", "checks.py")   # of an assignment
MIN_SECRET_CHARS = 16     # shorter lines ("return x", "else:") are not distinctive enough to mean a leak


class LeakError(RuntimeError):
    """The bundle would contain something students must not see; the message names the files."""


@dataclass(frozen=True)
class Secret:
    """A line students must not see, and where it comes from."""

    text: str
    source: str


def _code_lines(path: Path) -> list[str]:
    """The source lines of a .py file, or of every code cell of a notebook."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".ipynb":
        try:
            nb = json.loads(text)
        except ValueError:
            return text.splitlines()
        lines: list[str] = []
        for cell in nb.get("cells", []):
            src = cell.get("source", "")
            lines += ("".join(src) if isinstance(src, list) else src).splitlines()
        return lines
    return text.splitlines()


def _distinctive(line: str) -> bool:
    s = line.strip()
    return len(s) >= MIN_SECRET_CHARS and not s.startswith("#") and any(c.isalpha() for c in s)


def secrets(repo_root: Path = REPO_ROOT) -> dict[str, Secret]:
    """Stripped line -> Secret, for solution blocks, answer keys and hidden checks.

    Lines that also appear outside the secret parts (a shared import, a line the
    starter keeps) are public and left out, so the scan has no false alarms.
    """
    found: dict[str, Secret] = {}
    public: set[str] = set()
    solutions = repo_root / "solutions"
    for path in sorted(solutions.rglob("*")) if solutions.is_dir() else []:
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        rel = path.relative_to(repo_root).as_posix()
        if path.suffix in (".py", ".ipynb"):
            inside, header = False, False
            for n, line in enumerate(_code_lines(path), 1):
                stripped = line.strip()
                if (m := BEGIN.match(line)):
                    inside, header = True, bool(m.group("todo"))
                    public.add(stripped)   # its TODO text is what the starter shows
                elif END.match(line):
                    inside = header = False
                elif inside and header and stripped.startswith("#"):
                    public.add(stripped)   # the TODO text continues
                elif inside:
                    header = False
                    if _distinctive(line) or (stripped.startswith("#") and len(stripped) >= MIN_SECRET_CHARS):
                        found.setdefault(stripped, Secret(stripped, f"{rel} line {n}"))   # comments too
                else:
                    public.add(stripped)
        elif path.suffix in (".yaml", ".yml"):
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if ANSWER_LINE.match(line):
                    found.setdefault(line.strip(), Secret(line.strip(), f"{rel} line {n} (an answer key)"))
    hidden_ids = hidden_checks(repo_root)
    public_code = [p for p in (repo_root / "grader").rglob("*.py")] if (repo_root / "grader").is_dir() else []
    for folder in sorted((repo_root / "assignments").glob("*/")):
        public_code += [folder / m for m in PUBLIC_MODULES if m.endswith(".py") and (folder / m).is_file()]
        hidden = folder / "hidden.py"
        if hidden.is_file():
            rel = hidden.relative_to(repo_root).as_posix()
            for n, line in enumerate(hidden.read_text(encoding="utf-8").splitlines(), 1):
                if _distinctive(line) and not line.strip().startswith(("import ", "from ", '"""')):
                    found.setdefault(line.strip(), Secret(line.strip(), f"{rel} line {n} (a hidden check)"))
    for path in public_code:   # what ships to students anyway: its lines are public
        if "__pycache__" not in path.parts and not set(REGISTER.findall(path.read_text(encoding="utf-8"))) & {
                i.split(".", 1)[1] for i in hidden_ids if i.startswith(path.parent.name + ".")}:
            public.update(line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    public_text = "\n".join(public)
    return {k: v for k, v in found.items() if k not in public and k not in public_text}


REGISTER = re.compile(r"""@check\(\s*["']([^"']+)["']""")


def hidden_checks(repo_root: Path = REPO_ROOT) -> dict[str, str]:
    """``<assignment>.<check>`` -> the hidden module (``assignments/<assignment>/hidden.py``) declaring it."""
    out: dict[str, str] = {}
    for path in sorted((repo_root / "assignments").glob("*/hidden.py")):
        for name in REGISTER.findall(path.read_text(encoding="utf-8")):
            out.setdefault(f"{path.parent.name}.{name}", path.relative_to(repo_root).as_posix())
    return out


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def scan(bundle: Path, repo_root: Path = REPO_ROOT) -> list[str]:
    """Every leak in ``bundle``, one message per file: what it contains and where that comes from."""
    table = secrets(repo_root)
    hidden_ids = hidden_checks(repo_root)
    solution_files = {}   # digest -> path, for the solution files that hold secrets
    solutions = repo_root / "solutions"
    for p in sorted(solutions.rglob("*")) if solutions.is_dir() else []:
        if p.is_file() and p.suffix in (".py", ".ipynb", ".yaml", ".yml"):
            if any(BEGIN.match(line) or ANSWER_LINE.match(line) for line in _code_lines(p)):
                solution_files[_digest(p)] = p.relative_to(repo_root).as_posix()
    problems = []
    for path in sorted(bundle.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(bundle).as_posix()
        if HIDDEN_MODULE.search(path.name):
            problems.append(f"{rel}: a hidden check module")
            continue
        if "solutions" in path.relative_to(bundle).parts[:-1]:
            problems.append(f"{rel}: inside a solutions/ folder")
            continue
        if solution_files.get(_digest(path)):
            problems.append(f"{rel}: a copy of {solution_files[_digest(path)]}")
            continue
        try:
            lines = _code_lines(path) if path.suffix == ".ipynb" else path.read_text(encoding="utf-8").splitlines()
        except (UnicodeDecodeError, OSError):
            continue  # binary files: only whole copies matter, checked above
        marker = next((line.strip() for line in lines if BEGIN.match(line) or ANSWER_LINE.match(line)), None)
        if marker is not None:
            problems.append(f"{rel}: a solution marker or an answer key line: {marker[:80]!r}")
            continue
        text = "\n".join(lines)
        parts = path.relative_to(bundle).parts
        owner = parts[3] if parts[:3] == ("grader", "data", "assignments") and len(parts) > 4 else None
        registered = [f"{owner}.{i}" for i in REGISTER.findall(text) if f"{owner}.{i}" in hidden_ids]
        if registered:
            problems.append(f"{rel}: declares {registered[0]!r}, a hidden check of {hidden_ids[registered[0]]}")
            continue
        hit = next((secret for key, secret in table.items() if key in text), None)
        if hit is not None:
            problems.append(f"{rel}: contains {hit.source}: {hit.text[:80]!r}")
    return problems


STUDENT_README = """# {title}

Your homework bundle: one folder per assignment, and a grader that runs the
public checks on your machine in seconds. Hidden tests compare your values with
the reference solution when you submit.

## Set up

Python 3.10 or newer. On a laptop without an NVIDIA GPU, install the CPU build of
PyTorch first (a few hundred MB instead of several GB of CUDA libraries):

```
pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu
pip install .                  # the grader and the rest; keeps the torch you installed
```

With an NVIDIA GPU, `pip install .` alone installs the CUDA build. The notebooks
need a Jupyter kernel: `pip install notebook ipykernel` (or upload them to Colab,
which has one).

Each assignment's folder holds everything for it: the files you edit, its
statement (`README.md`) and its own `make_submission.sh`, which packs that
assignment only. The commands below start from this folder.
{sections}
Upload the zip. Written answers (derivations, plots, discussion) are graded by
course staff; one-line answers go in the `*_answers.yaml` files.
"""

SECTION = """
## {title}

```
cd {name}
grader check                                   # the public checks, in seconds
{training}./make_submission.sh                           # writes {name}_submission.zip
```
"""


def student_readme(assignments: list) -> str:
    """The bundle's README: set-up, then for every assignment its folder and its commands."""
    sections = []
    for a in assignments:
        training = "".join(f"{run.command}\n" for run in a.training)
        sections.append(SECTION.format(title=a.title, name=a.name, training=training))
    return STUDENT_README.format(title="Deep generative models: homework", sections="".join(sections))


STUDENT_PYPROJECT = """[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "dgm-harness-student"
version = "{version}"
description = "Starter code and public checks for the deep generative models homework."
requires-python = ">=3.10"
dependencies = {dependencies}

[project.scripts]
grader = "grader.app.cli:entry"

[tool.setuptools.packages.find]
include = ["grader*"]

[tool.setuptools.package-data]
grader = ["data/**/*", "py.typed"]
"""

# of grader/: they need solutions/ or run only on Gradescope, and are useless to students
INSTRUCTOR_ONLY = ("builders/release.py", "builders/autograder.py", "builders/starter.py", "builders/scaffold.py",
                   "app/gradescope.py")


def project_dependencies(repo_root: Path = REPO_ROOT) -> list[str]:
    """The runtime dependencies declared in the repository's pyproject.toml."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        return ["torch>=2.14", "torchvision>=0.29", "numpy", "pyyaml", "nbformat", "nbconvert", "matplotlib", "tqdm"]
    with open(repo_root / "pyproject.toml", "rb") as f:
        return list(tomllib.load(f)["project"]["dependencies"])


def _copy_package(repo_root: Path, dest: Path) -> None:
    def ignore(folder: str, names: list[str]) -> set[str]:
        skip = {n for n in names if n == "__pycache__" or n == "data" or HIDDEN_MODULE.search(n)}
        here = Path(folder).resolve().relative_to((repo_root / "grader").resolve())
        skip |= {n for n in names if (here / n).as_posix() in INSTRUCTOR_ONLY}
        return skip

    shutil.copytree(repo_root / "grader", dest, ignore=ignore)


STUDENT_SETUP_PY = '''"""Build in a temporary folder, never inside the bundle: `pip install .` leaves it as it was."""
import atexit
import shutil
import tempfile

from setuptools import setup

build = tempfile.mkdtemp(prefix="dgm-bundle-build-")
atexit.register(shutil.rmtree, build, True)
setup(options={"build": {"build_base": build}, "egg_info": {"egg_base": build}})
'''


def student_files(names: list[str], root: Path) -> list[str]:
    """The files of starter/ (relative paths) of the assignments ``names``: their folders, whole."""
    starter = root.parent / "starter"
    out = []
    for name in names:
        out += [p.relative_to(starter).as_posix() for p in sorted((starter / name).rglob("*"))
                if p.is_file() and "__pycache__" not in p.parts and ".ipynb_checkpoints" not in p.parts]
    return out


def _with_used(names: list[str], root: Path) -> list[str]:
    """``names`` and every assignment they use, in order."""
    out: list[str] = []

    def add(name: str) -> None:
        if name not in out:
            for used in load_assignment(name, root).uses:
                add(used)
            out.append(name)
    for name in names:
        add(name)
    return out


def build(out: Path, repo_root: Path = REPO_ROOT, assignments: list[str] | None = None) -> list[str]:
    """Write the student bundle to ``out`` (which must not exist, or be empty); return its files.

    Raises:
        LeakError: something secret would be included; nothing is written then.
        FileExistsError: ``out`` holds files already.
    """
    root = repo_root / "assignments"
    names = assignments or available(root)
    released = [load_assignment(n, root) for n in names]   # a clear error for an unknown or broken one
    everything = [load_assignment(n, root) for n in _with_used(names, root)]
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; choose a new folder for the bundle")
    stage = Path(tempfile.mkdtemp(prefix="dgm-release-"))
    try:
        starter = repo_root / "starter"
        _copy_package(repo_root, stage / "grader")
        data = stage / "grader" / "data"
        for rel in student_files(names, root):   # the student's folders, at the top
            (stage / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(starter / rel, stage / rel)
        for rel in student_files([a.name for a in everything], root):   # the grader's pristine copy
            (data / "starter" / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(starter / rel, data / "starter" / rel)
        for a in everything:
            src, dest = root / a.name, data / "assignments" / a.name
            dest.mkdir(parents=True)
            for module in PUBLIC_MODULES:
                if (src / module).is_file():
                    shutil.copyfile(src / module, dest / module)
        (stage / "README.md").write_text(student_readme(released))
        (stage / "pyproject.toml").write_text(STUDENT_PYPROJECT.format(
            version=__version__, dependencies=json.dumps(project_dependencies(repo_root))))
        (stage / "setup.py").write_text(STUDENT_SETUP_PY)
        problems = scan(stage, repo_root)
        if problems:
            raise LeakError("the student bundle would leak; nothing was written:\n  " + "\n  ".join(problems))
        out.mkdir(parents=True, exist_ok=True)
        files = []
        for path in sorted(stage.rglob("*")):
            rel = path.relative_to(stage)
            if path.is_dir():
                (out / rel).mkdir(exist_ok=True)
            else:
                shutil.copy2(path, out / rel)
                files.append(rel.as_posix())
        return files
    finally:
        shutil.rmtree(stage, ignore_errors=True)

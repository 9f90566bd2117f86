"""Generate ``starter/`` from ``solutions/``: every solution block becomes a TODO.

Both hold one folder per assignment, ``<name>/``; each starter folder also gets
the assignment's statement (``README.md``) and its own ``make_submission.sh``.

In ``.py`` files and in notebook code cells, the lines from ``# BEGIN SOLUTION``
to ``# END SOLUTION`` are replaced, at the same indentation, by the marker's
TODO text and ``raise NotImplementedError``. The marker may carry that text:
``# BEGIN SOLUTION: compute ...`` (continued on following ``#`` lines).
Run ``python -m grader.starter`` after editing solutions/; a test fails when
starter/ is stale.
"""
from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

from ..engine.paths import REPO_ROOT, STARTER_DIR

BEGIN = re.compile(r"^(?P<indent>\s*)# BEGIN SOLUTION(?::\s*(?P<todo>.*))?$")
END = re.compile(r"^\s*# END SOLUTION\s*$")


class MarkerError(ValueError):
    """Unbalanced solution markers; the message names the file and line."""


def strip_solutions(text: str, where: str) -> str:
    """Replace every solution block in ``text`` by its TODO and ``raise NotImplementedError``."""
    out: list[str] = []
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        m = BEGIN.match(lines[i].rstrip("\n"))
        if not m:
            if END.match(lines[i].rstrip("\n")):
                raise MarkerError(f"{where}:{i + 1}: END SOLUTION without BEGIN SOLUTION")
            out.append(lines[i])
            i += 1
            continue
        indent, todo = m.group("indent"), [m.group("todo") or "implement this (see the docstring above)"]
        i += 1
        while i < len(lines) and lines[i].strip().startswith("#") and not END.match(lines[i].rstrip("\n")) \
                and m.group("todo"):
            todo.append(lines[i].strip().lstrip("#").strip())
            i += 1
        start = i
        while i < len(lines) and not END.match(lines[i].rstrip("\n")):
            if BEGIN.match(lines[i].rstrip("\n")):
                raise MarkerError(f"{where}:{i + 1}: nested BEGIN SOLUTION")
            i += 1
        if i == len(lines):
            raise MarkerError(f"{where}: BEGIN SOLUTION without END SOLUTION")
        leak = repeated_code(" ".join(todo), lines[start:i])
        if leak:
            raise MarkerError(f"{where}:{start}: the TODO text repeats solution code ({leak!r}); "
                              "say what to do in words")
        i += 1  # skip END
        out.append(f"{indent}# TODO: {todo[0]}\n")
        out += [f"{indent}# {t}\n" for t in todo[1:]]
        out.append(f"{indent}raise NotImplementedError\n")
    return "".join(out)


TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d+)?|\*\*|[^\sA-Za-z0-9_]")
LEAK_TOKENS = 8   # this many tokens of a solution line in a row, in the TODO text, give the answer away


def repeated_code(todo: str, block: list[str]) -> str | None:
    """The first run of LEAK_TOKENS or more tokens that the TODO text shares with a code line of the block."""
    said = TOKEN.findall(todo)
    if len(said) < LEAK_TOKENS:
        return None
    grams = {tuple(said[j:j + LEAK_TOKENS]) for j in range(len(said) - LEAK_TOKENS + 1)}
    for line in block:
        if line.strip().startswith("#"):
            continue
        code = TOKEN.findall(line)
        for j in range(len(code) - LEAK_TOKENS + 1):
            if tuple(code[j:j + LEAK_TOKENS]) in grams:
                return " ".join(code[j:j + LEAK_TOKENS])
    return None


def strip_notebook(text: str, where: str) -> str:
    """Apply :func:`strip_solutions` to every code cell and clear outputs."""
    nb = json.loads(text)
    for k, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        new = strip_solutions(src, f"{where} cell {k}")
        cell["source"] = new.splitlines(keepends=True)
        cell["outputs"], cell["execution_count"] = [], None
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


ANSWER_LINE = re.compile(r"^(?P<head>\s*answer:).*#\s*SOLUTION\s*$")


def strip_answers(text: str) -> str:
    """Blank every ``answer: ...  # SOLUTION`` line of a short-answers key."""
    return "".join(m.group("head") + "\n" if (m := ANSWER_LINE.match(line.rstrip("\n"))) else line
                   for line in text.splitlines(keepends=True))


def render(root: Path = REPO_ROOT) -> dict[str, bytes]:
    """relative path -> bytes of every starter file of the repository ``root``.

    One folder per assignment, ``<name>/``: its files from ``solutions/<name>/`` with
    the solutions stripped, the files it ``include``s from another solution folder,
    its statement as ``README.md``, and a ``make_submission.sh`` that packs it alone.
    """
    solutions = root / "solutions"
    files: dict[str, bytes] = {}
    for path in sorted(solutions.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts or ".ipynb_checkpoints" in path.parts:
            continue
        rel = path.relative_to(solutions).as_posix()
        if path.suffix == ".py":
            files[rel] = strip_solutions(path.read_text(), rel).encode()
        elif path.suffix == ".ipynb":
            files[rel] = strip_notebook(path.read_text(), rel).encode()
        elif path.suffix in (".yaml", ".yml"):
            files[rel] = strip_answers(path.read_text()).encode()
        else:
            files[rel] = path.read_bytes()
    for name, include in student_folders(root).items():
        for dest, src in include.items():   # files written once, in another assignment's folder
            if src not in files:
                raise MarkerError(f"assignments/{name}/assignment.yaml: include: {dest}: solutions/{src} does not exist")
            files[f"{name}/{dest}"] = files[src]
        statement = root / "assignments" / name / "README.md"
        if statement.is_file():
            files[f"{name}/README.md"] = statement.read_bytes()
        files[f"{name}/make_submission.sh"] = make_submission_script(name, root)
    return files


ASSIGNMENT_LINE = re.compile(r'^ASSIGNMENT=""(?P<rest>.*)$', re.M)


def make_submission_script(name: str, root: Path = REPO_ROOT) -> bytes:
    """The repository's make_submission.sh with its ``ASSIGNMENT=""`` line naming ``name``: the copy
    in an assignment's folder packs that assignment and refuses any other."""
    source = root / "make_submission.sh" if (root / "make_submission.sh").is_file() else REPO_ROOT / "make_submission.sh"
    text, n = ASSIGNMENT_LINE.subn(lambda m: f'ASSIGNMENT="{name}"   # this folder\'s assignment', source.read_text())
    if n != 1:
        raise MarkerError(f"{source}: needs one line ASSIGNMENT=\"\" for each folder to name its assignment")
    return text.encode()


def student_folders(root: Path = REPO_ROOT) -> dict[str, dict[str, str]]:
    """Each assignment of ``root`` (its folder under starter/ and solutions/ bears its name), with the
    files it takes from another solution folder (its ``include``)."""
    from ..engine.config import parse_assignment, read_yaml

    out: dict[str, dict[str, str]] = {}
    for path in sorted((root / "assignments").glob("*/assignment.yaml")):
        a = parse_assignment(read_yaml(path), str(path))
        out[a.name] = {str(k): str(v) for k, v in (a.include or {}).items()}
    return out


def write(out: Path | None = None, root: Path = REPO_ROOT) -> list[str]:
    """Regenerate ``out`` (default: the repository's starter/) from solutions/; returns the files written."""
    out = out or root / "starter"
    files = render(root)
    if out.exists():
        shutil.rmtree(out)
    for rel, data in files.items():
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        if rel.endswith(".sh"):
            dest.chmod(0o755)
    return sorted(files)


def stale(out: Path = STARTER_DIR, root: Path = REPO_ROOT) -> list[str]:
    """Files of ``out`` that differ from what the generator makes (missing and extra included)."""
    files = render(root)
    have = {p.relative_to(out).as_posix() for p in out.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts} if out.exists() else set()
    diff = sorted(set(files) ^ have)
    diff += sorted(rel for rel in set(files) & have if (out / rel).read_bytes() != files[rel])
    return diff


def main() -> None:
    """``python -m grader.starter``: write starter/ and say how many files."""
    written = write()
    print(f"wrote {len(written)} files to {STARTER_DIR}", file=sys.stderr)


if __name__ == "__main__":
    main()

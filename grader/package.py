"""``make_submission.sh``: package a student's work for upload, driven by the assignment's assignment.yaml.

    ./make_submission.sh [ASSIGNMENT]     (in the folder holding your files)

It checks what it can before anything is zipped: the module parses; a notebook
is notebook JSON under 100 MB and defines every graded function; the answers
file is valid YAML whose answers fit their questions. It then writes
``<assignment>_submission.zip`` with the module, the short-answers file and the
outputs the assignment asks for (of numbered files such as sample grids, the
newest of each folder), and warns about graded functions that still raise
NotImplementedError and training runs whose outputs are missing. A zip left by
an earlier run is removed first; when something is wrong it stops with a
message and exit status 1, and no zip is there to be uploaded by mistake.
"""
from __future__ import annotations

import ast
import glob
import json
import os
import sys
import zipfile
from pathlib import Path

from .assignment import read as load_assignment
from .config import Assignment, ConfigError, available

MAX_NOTEBOOK_MB = 100   # Gradescope accepts uploads up to 100 MB; figures may weigh that much


class PackError(Exception):
    """The work cannot be packaged as it is; the message says what to fix."""


def _warn(msg: str) -> None:
    print(f"make_submission: warning: {msg}", file=sys.stderr)


def guess(folder: Path) -> str:
    """The assignment whose student module is in ``folder`` (the one whose functions it defines)."""
    from .assignment import guess as ranked

    found = ranked(folder)
    if not found:
        raise PackError("no assignment's files are in this folder; run the script in your assignment folder")
    return found[0].name


def check_python(rel: str) -> None:
    if not os.path.isfile(rel):
        raise PackError(f"{rel} is missing; run this script in your assignment folder")
    try:
        with open(rel, encoding="utf-8") as f:
            ast.parse(f.read(), filename=rel)
    except SyntaxError as err:
        raise PackError(f"{rel} does not parse: line {err.lineno}: {err.msg}. Fix it before submitting") from err
    except UnicodeDecodeError as err:
        raise PackError(f"{rel} is not UTF-8 text") from err


def check_notebook(rel: str, functions: list[str]) -> None:
    if not os.path.isfile(rel):
        raise PackError(f"{rel} is missing; run this script in your assignment folder")
    size_mb = os.path.getsize(rel) / 2**20
    if size_mb > MAX_NOTEBOOK_MB:
        raise PackError(f"{rel} is {size_mb:.1f} MB; the limit is {MAX_NOTEBOOK_MB} MB. Clear large outputs "
                        "(Edit > Clear All Outputs, then re-run only the plotting cells) and save again")
    try:
        with open(rel, encoding="utf-8") as f:
            cells = json.load(f)["cells"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise PackError(f"{rel} is not a valid notebook ({err}); save it from Jupyter or Colab again") from err
    defined = set()
    for i, cell in enumerate(cells, 1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        src = cell.get("source", "")
        src = "".join(src) if isinstance(src, list) else str(src)
        src = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in src.splitlines())
        try:
            tree = ast.parse(src)
        except SyntaxError as err:
            _warn(f"cell {i} of {rel} does not parse (line {err.lineno}: {err.msg})")
            continue
        defined |= {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    missing = [f for f in functions if f not in defined]
    if missing:
        raise PackError(f"{rel} does not define {', '.join(missing)} at the top level of a code cell")


def _outputs(patterns: tuple[str, ...]) -> list[str]:
    """Files matching ``patterns``; where the file name has a wildcard, the newest (last) of each folder."""
    files: list[str] = []
    for pattern in patterns:
        matches = sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
        if "*" in os.path.basename(pattern) or "?" in os.path.basename(pattern):
            last: dict[str, str] = {}
            for m in matches:
                last[os.path.dirname(m)] = m
            matches = sorted(last.values())
        files += [m for m in matches if m not in files]
    return files


def _module_path(a: Assignment) -> str:
    """The student file: at its name, or (for a renamed notebook, as the grader accepts) the only file
    with its suffix in the folder."""
    if os.path.isfile(a.module) or not a.notebook:
        return a.module
    others = set()
    for name in available():
        try:
            others.add(Path(load_assignment(name).module).name)
        except ConfigError:
            continue
    same = sorted(p for p in glob.glob("*" + Path(a.module).suffix) if os.path.isfile(p) and p not in others)
    return same[0] if len(same) == 1 else a.module


def stubs_left(path: str, functions: list[str]) -> list[str]:
    """Graded functions whose body still raises NotImplementedError (they would score nothing)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if path.endswith(".ipynb"):
            cells = json.loads(text)["cells"]
            text = "\n".join("".join(c["source"]) if isinstance(c.get("source"), list) else str(c.get("source", ""))
                             for c in cells if isinstance(c, dict) and c.get("cell_type") == "code")
            text = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in text.splitlines())
        tree = ast.parse(text)
    except (OSError, ValueError, KeyError, TypeError, SyntaxError):
        return []
    left = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name in functions:
            for inner in ast.walk(node):
                if isinstance(inner, ast.Raise) and inner.exc is not None and "NotImplementedError" in ast.unparse(inner.exc):
                    left.append(node.name)
                    break
    return left


def check_answers(a: Assignment) -> None:
    """The answers file parses and every answer fits its question (the grader reads it the same way)."""
    from .answer_checks import template_of
    from .answers import AnswersError, read_answers

    try:
        with open(a.answers, encoding="utf-8") as f:
            read_answers(f.read(), template_of(a), a.answers)
    except AnswersError as err:
        raise PackError(f"{err}. Fix it before submitting: grader check --assignment {a.name} says more") from err


def collect(a: Assignment) -> tuple[list[str], list[str]]:
    """(files to zip, warnings) for assignment ``a`` in the current folder; PackError when not ready."""
    files, warnings = [], []
    module = _module_path(a)
    if module != a.module:
        warnings.append(f"{a.module} is not here; packing {module}, the only {Path(a.module).suffix} file")
    if a.notebook:
        check_notebook(module, a.graded_functions)
    else:
        check_python(module)
    files.append(module)
    for rel in a.required_files:
        if rel != a.module:
            if not os.path.isfile(rel):
                raise PackError(f"{rel} is missing; run this script in your assignment folder")
            files.append(rel)
    if a.answers:
        if os.path.isfile(a.answers):
            check_answers(a)
            files.append(a.answers)
        else:
            warnings.append(f"{a.answers} is missing: its short answers will score 0")
    files += [f for f in _outputs(a.optional_files) if f not in files]
    left = stubs_left(module, a.graded_functions)
    if left:
        warnings.append(f"not implemented yet (still raising NotImplementedError, so scoring 0): {', '.join(left)}")
    for run in a.training:
        if not glob.glob(run.output):
            warnings.append(f"no {run.output} yet (train with: {run.command})")
    return files, warnings


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] in (["-h"], ["--help"]):
        print(f"usage: ./make_submission.sh [{'|'.join(available())}]   (default: the assignment in this folder)")
        return 0
    try:
        if len(args) > 1 or any(a.startswith("-") for a in args):
            raise PackError(f"unexpected argument(s): {' '.join(args)}; usage: ./make_submission.sh [ASSIGNMENT]")
        name = args[0] if args else guess(Path("."))
        try:
            a = load_assignment(name)
        except ConfigError as err:
            raise PackError(str(err)) from err
        out = f"{a.name}_submission.zip"
        if os.path.exists(out):
            os.remove(out)   # never leave an old zip to be uploaded by mistake
        files, warnings = collect(a)
    except PackError as err:
        print(f"make_submission: error: {err}", file=sys.stderr)
        return 1
    for w in warnings:
        _warn(w)
    tmp = out + ".part"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in files:
            zf.write(f, f.replace(os.sep, "/"))
    os.replace(tmp, out)
    print(f"Wrote {os.path.abspath(out)} with {len(files)} files:")
    for f in files:
        print(f"  {f}")
    print("Upload it to Gradescope." + (" (Something is missing: see the warnings above.)" if warnings else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

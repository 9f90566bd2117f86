"""``make_submission.sh``: package a student's work for upload, driven by the assignment's assignment.yaml.

    ./make_submission.sh     (the copy in each assignment's folder packs that assignment only)

It checks what it can before anything is zipped: the module (a ``.py`` file or
a notebook: JSON under 100 MB) parses and defines every graded function, and
a file holding another assignment's functions is refused with the folder to
pack it from; the answers file is valid YAML whose answers fit their
questions. It then writes
``<assignment>_submission.zip`` with the module, the short-answers file and the
outputs the assignment asks for (of numbered files such as sample grids, the
newest of each folder), and warns about graded functions that still raise
NotImplementedError, training runs whose outputs are missing, and a notebook
saved unrun (staff grade figures from it). A zip left by
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

from ..engine.assignment import available
from ..engine.assignment import read as load_assignment
from ..engine.config import Assignment, ConfigError
from ..engine.notebook import parse_python

MAX_NOTEBOOK_MB = 100   # Gradescope accepts uploads up to 100 MB; figures may weigh that much


class PackError(Exception):
    """The work cannot be packaged as it is; the message says what to fix."""


def _warn(msg: str) -> None:
    print(f"make_submission: warning: {msg}", file=sys.stderr)


def guess(folder: Path) -> str:
    """The assignment whose student module is in ``folder`` (the one whose functions it defines)."""
    from ..engine.assignment import guess as ranked

    found = ranked(folder)
    if not found:
        raise PackError("no assignment's files are in this folder; run the script in your assignment folder")
    return found[0].name


def _top_level_functions(tree: ast.Module) -> set[str]:
    return {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


def check_python(rel: str, a: Assignment) -> None:
    """The module parses and defines every graded function of ``a`` (and is not another assignment's)."""
    if not os.path.isfile(rel):
        raise PackError(f"{rel} is missing; run this script in your assignment folder")
    try:
        with open(rel, encoding="utf-8") as f:
            tree = parse_python(f.read(), filename=rel)
    except SyntaxError as err:
        raise PackError(f"{rel} does not parse: line {err.lineno}: {err.msg}. Fix it before submitting") from err
    except UnicodeDecodeError as err:
        raise PackError(f"{rel} is not UTF-8 text") from err
    check_defined(rel, a, _top_level_functions(tree), "at the top level of the file")


def check_defined(rel: str, a: Assignment, defined: set[str], where: str) -> None:
    """Refuse a file that lacks one of ``a``'s graded functions, naming the assignment it fits instead
    when it holds another assignment's functions (the other course version's gan.py, say)."""
    missing = [f for f in a.graded_functions if f not in defined]
    if not missing:
        return
    mine = 1 - len(missing) / len(a.graded_functions)
    fits = []
    for name in available():
        if name == a.name:
            continue
        try:
            other = load_assignment(name)
        except ConfigError:
            continue
        if Path(other.module).suffix != Path(a.module).suffix or not other.graded_functions:
            continue
        share = sum(f in defined for f in other.graded_functions) / len(other.graded_functions)
        if share > mine:
            fits.append((share, name))
    if fits:
        other = max(fits)[1]
        raise PackError(f"{rel} holds the functions of {other}, not of {a.name} (it lacks {', '.join(missing)}); "
                        f"{other}'s work goes in its own folder and is packed by {pointer(other)}")
    raise PackError(f"{rel} does not define {', '.join(missing)} {where}")


def pointer(name: str) -> str:
    """Where the make_submission.sh of assignment ``name`` is, seen from this folder."""
    sibling = Path("..") / name / "make_submission.sh"
    if sibling.is_file():
        return sibling.as_posix()
    return f"the make_submission.sh of your {name} folder"


def check_notebook(rel: str, a: Assignment) -> list[str]:
    """The notebook is valid, under the size limit, and defines every graded function; returns warnings
    (a notebook saved unrun lacks the figures staff grade)."""
    if not os.path.isfile(rel):
        raise PackError(f"{rel} is missing; run this script in your assignment folder")
    size_mb = os.path.getsize(rel) / 2**20
    if size_mb > MAX_NOTEBOOK_MB:
        raise PackError(f"{rel} is {size_mb:.1f} MB; the limit is {MAX_NOTEBOOK_MB} MB. Clear large outputs "
                        "(Edit > Clear All Outputs, then re-run only the plotting cells) and save again")
    try:
        with open(rel, encoding="utf-8") as f:
            cells = json.load(f)["cells"]
        if not isinstance(cells, list):
            raise TypeError("'cells' is not a list")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise PackError(f"{rel} is not a valid notebook ({err}); save it from Jupyter or Colab again") from err
    defined: set[str] = set()
    code, never_run, with_outputs = 0, [], 0
    for i, cell in enumerate(cells, 1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        src = cell.get("source", "")
        src = "".join(src) if isinstance(src, list) else str(src)
        if src.strip():
            code += 1
            with_outputs += bool(cell.get("outputs"))
            if cell.get("execution_count") is None and not cell.get("outputs"):
                never_run.append(i)
        src = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in src.splitlines())
        try:
            tree = parse_python(src)
        except SyntaxError as err:
            _warn(f"cell {i} of {rel} does not parse (line {err.lineno}: {err.msg})")
            continue
        defined |= _top_level_functions(tree)
    check_defined(rel, a, defined, "at the top level of a code cell")
    figures = [m.name for m in a.manual if m.figure]
    if not figures or not code or (with_outputs and not never_run):
        return []
    state = ("was saved without any outputs" if not with_outputs else
             f"has {len(never_run)} of its {code} code cells never run "
             f"(cell{'s' if len(never_run) > 1 else ''} {', '.join(map(str, never_run[:8]))}"
             f"{', ...' if len(never_run) > 8 else ''})")
    return [f"{rel} {state}, so it lacks the figures course staff grade ({'; '.join(figures)}). Run every "
            "cell (Kernel > Restart & Run All, or Runtime > Run all in Colab), save, and run this script again"]


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
        tree = parse_python(text)
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
    from ..engine.answer_checks import template_of
    from ..engine.answers import AnswersError, read_answers

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
        warnings += check_notebook(module, a)
    else:
        check_python(module, a)
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
    """``make_submission.sh [ASSIGNMENT]``; a folder's own copy passes ``--folder-of NAME`` first."""
    args = sys.argv[1:] if argv is None else list(argv)
    mine = None
    if args[:1] == ["--folder-of"] and len(args) >= 2:
        mine, args = args[1], args[2:]
    if args[:1] in (["-h"], ["--help"]):
        if mine:
            print(f"usage: ./make_submission.sh   packs this folder's assignment, {mine}, into {mine}_submission.zip")
        else:
            print(f"usage: ./make_submission.sh [{'|'.join(available())}]   (default: the assignment in this folder)")
        return 0
    try:
        if len(args) > 1 or any(a.startswith("-") for a in args):
            raise PackError(f"unexpected argument(s): {' '.join(args)}; usage: ./make_submission.sh")
        name = args[0] if args else mine or guess(Path("."))
        if mine and name != mine:
            if name in available():
                raise PackError(f"this folder is {mine}'s; {name} has a folder of its own: run {pointer(name)}")
            raise PackError(f"unknown assignment {name!r}; this folder is {mine}'s: run ./make_submission.sh "
                            "with no argument")
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

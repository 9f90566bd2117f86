"""``make_submission.sh``: package a student's work for upload, driven by the assignment's assignment.yaml.

    ./make_submission.sh [ASSIGNMENT]     (in the folder holding your files)

It checks what it can before anything is zipped (the module parses; a notebook
is notebook JSON under 20 MB and defines every graded function), then writes
``<assignment>_submission.zip`` with the module, the short-answers file and the
outputs the assignment asks for (of numbered files such as sample grids, the
newest of each folder), and warns about training runs whose outputs are
missing. It stops with a message and exit status 1 when something is wrong.
"""
from __future__ import annotations

import ast
import glob
import json
import os
import sys
import zipfile
from pathlib import Path

from .config import Assignment, ConfigError, available, load_assignment

MAX_NOTEBOOK_MB = 20


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


def collect(a: Assignment) -> tuple[list[str], list[str]]:
    """(files to zip, warnings) for assignment ``a`` in the current folder; PackError when not ready."""
    files, warnings = [], []
    if a.notebook:
        check_notebook(a.module, a.graded_functions)
    else:
        check_python(a.module)
    files.append(a.module)
    for rel in a.required_files:
        if rel != a.module:
            if not os.path.isfile(rel):
                raise PackError(f"{rel} is missing; run this script in your assignment folder")
            files.append(rel)
    if a.answers:
        if os.path.isfile(a.answers):
            files.append(a.answers)
        else:
            warnings.append(f"{a.answers} is missing: its short answers will score 0")
    files += [f for f in _outputs(a.optional_files) if f not in files]
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
        name = args[0] if args else guess(Path("."))
        try:
            a = load_assignment(name)
        except ConfigError as err:
            raise PackError(str(err)) from err
        files, warnings = collect(a)
    except PackError as err:
        print(f"make_submission: error: {err}", file=sys.stderr)
        return 1
    for w in warnings:
        _warn(w)
    out = f"{a.name}_submission.zip"
    tmp = out + ".part"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in files:
            zf.write(f, f.replace(os.sep, "/"))
    os.replace(tmp, out)
    print(f"Wrote {out} with {len(files)} files:")
    for f in files:
        print(f"  {f}")
    print("Upload it to Gradescope." + (" (Some outputs are missing: see the warnings above.)"
                                        if any("train with" in w for w in warnings) else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

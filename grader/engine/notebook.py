"""Build an importable module from a notebook, without running it (parent side: parsing only).

Students may split, copy, move or rename cells, so graded functions are found by
name. The module keeps what defines things: imports (each wrapped so that a
package missing on the grading machine does not sink the whole module),
function and class definitions, and assignments of constants (``SMOKE = True``,
``MU, SIGMA = 4.0, 1.25``, ``device = torch.device("cpu")``) together with
``if`` blocks that only hold such assignments (each wrapped too, since one may
use a name defined by a dropped line). Everything else (training
runs, plots, prints, magics) is dropped, because the grader calls the
functions itself.
"""
from __future__ import annotations

import ast
import json
import os
import re
import threading
from dataclasses import dataclass, field

from ..sandbox import bounded

# calls allowed in a kept constant assignment: cheap, side-effect free constructors
CHEAP_CALLS = {
    "torch.device", "torch.cuda.is_available", "torch.backends.mps.is_available", "torch.tensor",
    "np.array", "numpy.array", "np.log", "np.sqrt", "np.pi", "math.log", "math.sqrt", "math.exp",
    "float", "int", "str", "bool", "dict", "list", "tuple", "set", "range", "len", "min", "max",
    "abs", "round", "os.environ.get", "os.getenv", "os.path.join", "Path", "pathlib.Path",
}


class NotebookError(ValueError):
    """The file is not a readable notebook; the message says why."""


@dataclass
class Extracted:
    """The module source and what was learnt about the graded names."""

    source: str
    cells: dict[str, list[int]] = field(default_factory=dict)   # graded name -> cells defining it
    problems: list[str] = field(default_factory=list)            # cells that do not parse, etc.
    lines: list[list[int]] = field(default_factory=list)        # [first line, last line, cell] of the source

    def cell_of(self, line: int) -> int | None:
        """The notebook cell that line ``line`` of the extracted source came from (None if unknown)."""
        return cell_of(self.lines, line)

    def notes(self, name: str) -> str:
        """A note for a graded name defined in several cells ('' otherwise)."""
        where = self.cells.get(name, [])
        if len(where) > 1:
            return (f"{name} is defined in {len(where)} cells ({', '.join(map(str, where))}); "
                    f"the last one (cell {where[-1]}) is graded, as when the notebook runs top to bottom.")
        return ""


def cell_of(lines: list[list[int]], line: int) -> int | None:
    """The cell of line ``line`` in an extracted source, from its ``[first, last, cell]`` ranges."""
    return next((cell for first, last, cell in lines if first <= line <= last), None)


def code_cells(text: str) -> list[tuple[int, str | None]]:
    """(cell number from 1, source or None if it is not text) for every code cell; NotebookError if
    not notebook JSON."""
    try:
        nb = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise NotebookError(f"not valid notebook JSON ({err})") from err
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise NotebookError("not a notebook: no list of cells")
    out = []
    for i, cell in enumerate(nb["cells"], 1):
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            src = cell.get("source", "")
            if isinstance(src, list) and all(isinstance(line, str) for line in src):
                src = "".join(src)
            if not isinstance(src, str):
                src = None   # not text: reported by extract(), skipped
            out.append((i, src))
    return out


def _strip_magics(src: str) -> str:
    """Blank out IPython magics and shell escapes, keeping line numbers."""
    lines = src.splitlines()
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in lines)


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _cheap(value: ast.AST) -> bool:
    return all(_dotted(n.func) in CHEAP_CALLS for n in ast.walk(value) if isinstance(n, ast.Call))


def _names_only(target: ast.AST) -> bool:
    if isinstance(target, ast.Name):
        return True
    return isinstance(target, (ast.Tuple, ast.List)) and all(_names_only(t) for t in target.elts)


def _keep(node: ast.stmt) -> bool:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)):
        return True
    if isinstance(node, ast.Assign):
        return all(_names_only(t) for t in node.targets) and _cheap(node.value)
    if isinstance(node, ast.AnnAssign):
        return isinstance(node.target, ast.Name) and (node.value is None or _cheap(node.value))
    if isinstance(node, ast.If):
        return _cheap(node.test) and all(_keep(n) for n in node.body + node.orelse)
    return False


def _guard(node: ast.stmt, error: str) -> ast.stmt:
    """``try: <node> except <error>: pass``: one failing line must not sink the module."""
    return ast.Try(body=[node], handlers=[ast.ExceptHandler(type=ast.Name(error, ast.Load()),
                                                              name=None, body=[ast.Pass()])],
                   orelse=[], finalbody=[])


MAX_CODE_BYTES = 1 << 20     # of all code cells together, as for a Python source (a homework notebook: ~50 KB)


_PARSE_LOCK = threading.Lock()


def parse_python(source: str, mode: str = "exec", filename: str = "<unknown>") -> ast.AST:
    """``ast.parse``, one thread at a time: CPython 3.11 can fail two parses that run at once in one
    process ("AST constructor recursion depth mismatch", gh-106905), and grading threads parse
    notebooks, starters and formulas side by side."""
    with _PARSE_LOCK:
        return ast.parse(source, filename=filename, mode=mode)


def extract(text: str, graded: list[str]) -> Extracted:
    """The importable module for a notebook's text, and where each graded name is defined.

    Only what is kept is written back (training loops, plots and the like are
    parsed, then dropped); a notebook with more code than any homework is refused.

    Raises:
        NotebookError: not a notebook, or more than ``MAX_CODE_BYTES`` of code.
    """
    body: list[tuple[int, ast.stmt]] = []
    result = Extracted(source="")
    cells = code_cells(text)
    size = sum(len(src) for _, src in cells if src is not None)
    if size > MAX_CODE_BYTES:
        raise NotebookError(f"its code cells hold {size / (1 << 20):.1f} MB of code; at most "
                            f"{MAX_CODE_BYTES >> 20} MB is accepted (remove generated or pasted data)")
    for number, src in cells:
        if src is None:
            result.problems.append(f"cell {number}'s source is not text; it was skipped")
            continue
        try:
            tree = parse_python(_strip_magics(src))
        except SyntaxError as err:
            result.problems.append(f"cell {number} has a syntax error (line {err.lineno}: {err.msg}); it was skipped")
            continue
        except (RecursionError, MemoryError, ValueError):
            result.problems.append(f"cell {number} is nested too deeply to be read; it was skipped")
            continue
        for node in tree.body:
            if not _keep(node):
                continue
            try:
                ast.unparse(node)   # what cannot be written back (nested too deeply) cannot be graded
            except (RecursionError, MemoryError, ValueError):
                result.problems.append(f"cell {number} is nested too deeply to be read; it was skipped")
                break
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name in graded:
                result.cells.setdefault(node.name, []).append(number)
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                node = _guard(node, "ImportError")
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.If)):
                node = _guard(node, "Exception")   # e.g. a constant computed from a dropped name
            body.append((number, node))
    parts, at = [], 1
    for number, node in body:   # one statement at a time, so each line of the module knows its cell
        text = ast.unparse(ast.fix_missing_locations(node))
        n = text.count("\n") + 1
        result.lines.append([at, at + n - 1, number])
        parts.append(text)
        at += n
    result.source = "\n".join(parts) + "\n"
    return result


MAX_NOTEBOOK_BYTES = 100 << 20   # Gradescope's upload limit: outputs (figures) may weigh this much
OUTPUTS_KEY = '"outputs"'


def without_outputs(text: str) -> str:
    """The notebook JSON ``text`` with every ``"outputs": [...]`` value replaced by ``[]``.

    One pass over the text that tracks strings and brackets (linear time, no
    parse tree): a notebook's figures, however heavy, are never built into
    Python objects; only its cells' sources and metadata are parsed afterwards.
    Text that is not JSON stays something json.loads refuses.
    """
    out: list[str] = []
    n, last = len(text), 0
    i, scanned, inside = 0, 0, False     # text[:scanned] read; inside: whether that ends in a string
    while (j := text.find(OUTPUTS_KEY, i)) >= 0:
        inside = _in_string_after(text, scanned, j, inside)
        scanned = j
        k = j + len(OUTPUTS_KEY)
        if inside:              # the key's opening quote closed a string: not a key
            i = j + 1
            continue
        while k < n and text[k] in " \t\r\n:":
            k += 1
        if k >= n or text[k] != "[":
            i = j + 1
            continue
        end = _matching_bracket(text, k)
        if end < 0:
            break
        out.append(text[last:k] + "[]")
        last = i = scanned = end + 1
        inside = False
    out.append(text[last:])
    return "".join(out)


def _in_string_after(text: str, start: int, pos: int, inside: bool) -> bool:
    """Whether ``text[pos]`` lies in a JSON string, given whether ``text[start]`` does (no rescans)."""
    k = start
    while (q := text.find('"', k, pos)) >= 0:
        backslashes, b = 0, q - 1
        while b >= start and text[b] == "\\":
            backslashes += 1
            b -= 1
        if backslashes % 2 == 0:
            inside = not inside
        k = q + 1
    return inside


_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')   # a whole JSON string, or a bracket


def _matching_bracket(text: str, start: int) -> int:
    """Index of the ``]`` closing the ``[`` at ``start`` (strings skipped, at C speed), or -1."""
    depth = 0
    for m in _TOKEN.finditer(text, start):
        c = m.group()
        if c in "[{":
            depth += 1
        elif c in "]}":
            depth -= 1
            if depth == 0:
                return m.start()
    return -1


@bounded.task(NotebookError)
def extract_plain(path: str, graded: list[str]) -> dict:
    """:func:`extract` of the notebook file at ``path`` as plain data (run in a bounded helper process).

    Raises:
        NotebookError: the file is larger than 100 MB or not a notebook.
    """
    size = os.path.getsize(path)
    if size > MAX_NOTEBOOK_BYTES:
        raise NotebookError(f"the notebook is {size >> 20} MB; at most {MAX_NOTEBOOK_BYTES >> 20} MB is "
                            "accepted (clear the outputs: Kernel > Restart & Clear Output)")
    with open(path, encoding="utf-8", errors="replace") as f:
        ex = extract(without_outputs(f.read()), graded)   # figures are the staff's, not the parser's
    return {"source": ex.source, "cells": ex.cells, "problems": ex.problems, "lines": ex.lines}

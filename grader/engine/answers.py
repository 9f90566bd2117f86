"""Short answers in ``<assignment>_answers.yaml``: parse, validate against the template, score.

Parent side only: the file is data, read with ``yaml.safe_load``-equivalent
composition; no student code runs. Each item has a kind:

* ``choices``: a list (or one value) of the item's options, compared as a set;
* ``bool``: true / false (yes / no);
* ``number``: a number, ``inf`` / ``-inf``, or a closed-form constant such as ``log(2)``;
* ``expression``: a formula in the item's variables (``abs(theta)``, ``|theta|``),
  compared with the key at several points.

Errors name the file and line, so students can fix typos before the deadline.
"""
from __future__ import annotations

import ast
import functools
import math
import operator
import re
from dataclasses import dataclass
from typing import Any

import yaml

from ..sandbox import bounded
from .notebook import parse_python

KINDS = ("choices", "bool", "number", "expression")
MAX_BYTES = 64 << 10
FUNCS = {"log": math.log, "ln": math.log, "exp": math.exp, "sqrt": math.sqrt, "abs": abs,
         "log2": math.log2, "log10": math.log10}
CONSTS = {"pi": math.pi, "e": math.e, "inf": math.inf, "infinity": math.inf, "oo": math.inf}
OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
       ast.Pow: operator.pow}


class AnswersError(ValueError):
    """The answers file is malformed; the message names the file and line."""


def evaluate(text: str, variables: dict[str, float] | None = None) -> float:
    """Value of a closed-form expression: numbers, + - * / ^ **, log exp sqrt abs, pi e inf, variables.

    Raises:
        ValueError: anything else (no attribute access, no other names or calls).
    """
    variables = variables or {}
    src = re.sub(r"\|([^|]+)\|", r"abs(\1)", str(text).strip()).replace("^", "**").replace("∞", "inf")
    src = src.replace("θ", "theta")
    if len(src) > 200:
        raise ValueError("the expression is too long")
    try:
        tree = parse_python(src, mode="eval")
    except SyntaxError as err:
        raise ValueError(f"cannot read {text!r} as a formula") from err

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return float(node.value)
        if isinstance(node, ast.Name):
            if node.id in variables:
                return float(variables[node.id])
            if node.id.lower() in CONSTS:
                return CONSTS[node.id.lower()]
            raise ValueError(f"unknown name {node.id!r}")
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = ev(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp) and type(node.op) in OPS:
            left, right = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > 100:
                raise ValueError("exponent too large")
            value = OPS[type(node.op)](left, right)
            if not isinstance(value, float):   # (-8) ** 0.5 is complex
                raise ValueError("not a real number")
            return value
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCS \
                and len(node.args) == 1 and not node.keywords:
            return float(FUNCS[node.func.id](ev(node.args[0])))
        raise ValueError(f"{ast.unparse(node)!r} is not allowed in a formula")

    try:
        return ev(tree.body)
    except (ZeroDivisionError, OverflowError, ValueError, TypeError, RecursionError) as err:
        if isinstance(err, ValueError) and "not allowed" in str(err) or "unknown name" in str(err):
            raise
        raise ValueError(f"cannot evaluate {text!r} ({err})") from err


@dataclass(frozen=True)
class Item:
    """One question of the template (what the student sees) or of the key (with the answer)."""

    id: str
    kind: str
    question: str = ""
    options: tuple[str, ...] = ()
    variables: tuple[str, ...] = ()
    points: float = 0.0
    tolerance: float = 1e-3       # relative, for numbers and expressions
    domain: tuple[float, float] = (-3.0, 3.0)   # where expressions are compared


def _compose(text: str, where: str) -> yaml.MappingNode:
    if len(text.encode()) > MAX_BYTES:
        raise AnswersError(f"{where} is larger than {MAX_BYTES >> 10} KB")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise AnswersError(f"{where}{line}: not valid YAML ({getattr(err, 'problem', None) or err})") from err
    if node is None:
        return yaml.MappingNode("tag:yaml.org,2002:map", [])
    if not isinstance(node, yaml.MappingNode):
        raise AnswersError(f"{where} line {node.start_mark.line + 1}: expected question ids mapped to answers")
    return node


def _items(text: str, where: str) -> dict[str, tuple[Any, int]]:
    """item id -> (its YAML value, line number); values from safe_load, lines from composing."""
    lines = {str(key.value): key.start_mark.line + 1 for key, _ in _compose(text, where).value}
    data = yaml.safe_load(text) or {}
    return {str(k): (v, lines.get(str(k), 0)) for k, v in data.items()}


MAX_DEPTH = 8


def _refuse_expansions(text: str, where: str) -> None:
    """Refuse anchors, aliases and deep nesting before anything is built (a 1 KB file of nested aliases
    expands to gigabytes)."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            line = f" line {event.start_mark.line + 1}" if event.start_mark else ""
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise AnswersError(f"{where}{line}: YAML anchors and aliases (& and *) are not accepted; "
                                   "write each answer out")
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    raise AnswersError(f"{where}{line}: nested more than {MAX_DEPTH} levels deep")
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise AnswersError(f"{where}{line}: not valid YAML ({getattr(err, 'problem', None) or err})") from err


def _plain(value: Any) -> Any:
    """A YAML value as JSON-able data (dates, sets and bytes become text)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


@bounded.task(AnswersError)
def untrusted_items(text: str, where: str) -> dict[str, list]:
    """:func:`_items` of a student's file, as plain data, with expansions refused (runs in a bounded
    helper process: see :mod:`grader.sandbox.bounded`)."""
    if len(text.encode("utf-8", "replace")) > MAX_BYTES:
        raise AnswersError(f"{where} is larger than {MAX_BYTES >> 10} KB")
    _refuse_expansions(text, where)
    try:
        return {k: [_plain(v), line] for k, (v, line) in _items(text, where).items()}
    except (ValueError, TypeError, OverflowError) as err:   # e.g. an integer with 5000 digits
        raise AnswersError(f"{where}: a value cannot be read ({str(err)[:120]})") from err


@functools.lru_cache(maxsize=32)
def load_template(text: str, where: str) -> dict[str, Item]:
    """The questions of a template or key file (a mapping of ids to question records)."""
    items = {}
    for ident, (rec, line) in _items(text, where).items():
        if not isinstance(rec, dict) or rec.get("kind") not in KINDS:
            raise AnswersError(f"{where} line {line}: item {ident} needs a kind, one of {', '.join(KINDS)}")
        items[ident] = Item(ident, rec["kind"], str(rec.get("question", "")),
                            tuple(str(o) for o in rec.get("options") or ()),
                            tuple(str(v) for v in rec.get("variables") or ()),
                            float(rec.get("points", 0)), float(rec.get("tolerance", 1e-3)),
                            tuple(float(d) for d in rec.get("domain") or (-3.0, 3.0)))
    return items


@functools.lru_cache(maxsize=32)
def load_key(text: str, where: str) -> dict[str, Any]:
    """item id -> the right answer (the ``answer`` of each record)."""
    return {ident: rec.get("answer") for ident, (rec, _) in _items(text, where).items() if isinstance(rec, dict)}


def normalise(item: Item, value: Any, line: int, where: str) -> Any:
    """The student's answer in canonical form; AnswersError naming the line when it does not fit the kind."""
    at = f"{where} line {line}, item {item.id}"
    try:
        return _normalise(item, value, at)
    except AnswersError:
        raise
    except (TypeError, ValueError, OverflowError, ArithmeticError, RecursionError) as err:
        raise AnswersError(f"{at}: this answer cannot be read ({type(err).__name__}: {str(err)[:100]})") from err


def _normalise(item: Item, value: Any, at: str) -> Any:
    if item.kind == "choices":
        chosen = value if isinstance(value, list) else ([] if value in (None, "", "none") else [value])
        chosen = [str(c).strip() for c in chosen]
        bad = [c for c in chosen if c not in item.options]
        if bad:
            raise AnswersError(f"{at}: {', '.join(map(repr, bad))} is not an option; choose from {', '.join(item.options)}")
        return frozenset(chosen)
    if item.kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "yes", "t", "y"):
            return True
        if text in ("false", "no", "f", "n"):
            return False
        raise AnswersError(f"{at}: expected true or false, got {value!r}")
    if item.kind == "number":
        try:
            return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else evaluate(str(value))
        except ValueError as err:
            raise AnswersError(f"{at}: expected a number, inf, or a constant like log(2) ({err})") from err
    try:
        points = _sample_points(item)
        for p in points:
            try:
                evaluate(str(value), p)
            except ValueError as err:
                if "not allowed" in str(err) or "unknown name" in str(err) or "cannot read" in str(err):
                    raise
        return str(value)
    except ValueError as err:
        names = ", ".join(item.variables) or "no variables"
        raise AnswersError(f"{at}: expected a formula in {names} ({err})") from err


def _sample_points(item: Item) -> list[dict[str, float]]:
    """Five points inside the item's domain, a different one per variable."""
    lo, hi = item.domain
    fractions = (0.13, 0.71, 0.37, 0.93, 0.55)
    return [{v: lo + (hi - lo) * fractions[(i + j) % 5] for j, v in enumerate(item.variables)} for i in range(5)]


def read_answers(text: str, template: dict[str, Item], where: str) -> tuple[dict[str, Any], list[str]]:
    """(item id -> canonical answer or None if left blank, problems); AnswersError for a broken file.

    The student's text is parsed in a bounded helper process (:mod:`grader.sandbox.bounded`).
    """
    try:
        given = {k: (v, line) for k, (v, line) in bounded.call(untrusted_items, text=text, where=where).items()}
    except bounded.InputTooLarge as err:
        raise AnswersError(f"{where}: {err}") from err
    unknown = [i for i in given if i not in template]
    if unknown:
        line = given[unknown[0]][1]
        raise AnswersError(f"{where} line {line}: unknown item {unknown[0]}; the items are {', '.join(template)}")
    out, problems = {}, []
    for ident, item in template.items():
        if ident not in given:
            problems.append(f"item {ident} is missing")
            out[ident] = None
            continue
        rec, line = given[ident]
        value = rec.get("answer") if isinstance(rec, dict) else rec
        if value is None or (isinstance(value, str) and not value.strip()):
            problems.append(f"item {ident} is not answered yet")
            out[ident] = None
            continue
        out[ident] = normalise(item, value, line, where)
    return out, problems


def score(item: Item, answer: Any, key: Any) -> tuple[bool, str]:
    """(right, message) for one canonical answer against the key."""
    if answer is None:
        return False, "not answered"
    if item.kind == "choices":
        want = frozenset(str(k) for k in (key if isinstance(key, list) else [key]))
        given = ", ".join(sorted(answer)) or "none"
        return answer == want, "" if answer == want else f"your choice {given} is not right"
    if item.kind == "bool":
        return answer == bool(key), "" if answer == bool(key) else f"your answer {str(answer).lower()} is not right"
    if item.kind == "number":
        want = evaluate(str(key))
        ok = (math.isinf(want) and answer == want) or (math.isfinite(want) and math.isfinite(answer)
                                                       and abs(answer - want) <= item.tolerance * max(1.0, abs(want)))
        return ok, "" if ok else f"{answer:g} is not right"
    for p in _sample_points(item):
        try:
            got, want = evaluate(answer, p), evaluate(str(key), p)
        except ValueError:
            return False, f"{answer!r} cannot be evaluated at {p}"
        if not (got == want or abs(got - want) <= item.tolerance * max(1.0, abs(want))):
            return False, f"{answer!r} is not right (it differs at {p})"
    return True, ""

"""The tables of docs/grading.md that say what each answer in the variant catalogues costs, generated from them.

Course staff read there which forms of an answer get full marks and what each typical mistake costs, with
the phrase its feedback names it by; tests/test_grading_tables.py fails when the docs and the catalogues
disagree. Regenerate with ``python tests/grading_tables.py --write``.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import gan1d_variants
import gan_variants
import vae_variants
from grader.engine.assignment import load_assignment
from grader.engine.paths import REPO_ROOT

DOC = REPO_ROOT / "docs" / "grading.md"
BEGIN, END = "<!-- catalogue:{name} begin (generated: python tests/grading_tables.py --write) -->", \
    "<!-- catalogue:{name} end -->"
ASSIGNMENTS = ("gan", "gan_split", "gan1d", "vae")


def _gan_passes(v: gan_variants.Variant, d: str = "gan.d", g: str = "gan.g") -> set[str]:
    """The hidden checks a gan variant passes: a loss's value test when it is right, its stability test when
    it is also finite at extreme logits."""
    out = set()
    for n, prefix in (("d", d), ("g", g)):
        if getattr(v, n):
            out.add(f"{prefix}_loss")
            if n not in v.unstable:
                out.add(f"{prefix}_stable")
    return out


def rows(name: str) -> list[tuple[str, str, float, float, str]]:
    """(function, answer, points lost, points of the function, message phrase) for every catalogued answer."""
    a = load_assignment(name)
    points: dict[str, dict[str, float]] = {}   # function -> check -> points (summed over its tests)
    for p in a.parts:
        for t in p.tests:
            points.setdefault(p.function, {})
            points[p.function][t.check] = points[p.function].get(t.check, 0.0) + t.points
    out = []
    if name == "gan":
        cases = [(v.function, v, _gan_passes(v)) for v in gan_variants.VARIANTS]
    elif name == "gan_split":
        # a function is listed with the right pairs and with those whose loss it returns is wrong
        right = [v for v in gan_variants.SPLIT_VARIANTS if v.d and v.g and not v.unstable]
        cases = [(fn, v, _gan_passes(v)) for v in gan_variants.SPLIT_VARIANTS
                 for n, fn in zip("dg", gan_variants.SPLIT_OF[v.function])
                 if v in right or not getattr(v, n) or n in v.unstable]
    else:
        catalogue = gan1d_variants if name == "gan1d" else vae_variants
        cases = [(v.function, v, set(v.passes)) for v in catalogue.VARIANTS]
    order = list(dict.fromkeys(p.function for p in a.parts))
    for fn, v, passes in sorted(cases, key=lambda c: order.index(c[0])):
        checks = points[fn]
        lost = sum(pts for check, pts in checks.items() if check not in passes)
        out.append((fn, v.name.replace("_", " "), lost, sum(checks.values()), v.says if lost else ""))
    # full marks first within each function, then the mistakes in catalogue order
    return sorted(out, key=lambda r: (order.index(r[0]), r[2] > 0))


def table(name: str) -> str:
    """The Markdown table of one assignment."""
    lines = ["| function | answer (variant in the catalogue) | points lost | the feedback says |",
             "| --- | --- | --- | --- |"]
    for fn, answer, lost, total, says in rows(name):
        cost = "full marks" if lost == 0 else f"{lost:g} of {total:g}"
        phrase = f"“{says}”" if says else ("" if lost == 0 else "(the mismatch, no fixed phrase)")
        lines.append(f"| `{fn}` | {answer} | {cost} | {phrase.replace('|', '&#124;')} |")
    return "\n".join(lines)


def section(name: str) -> str:
    return f"{BEGIN.format(name=name)}\n{table(name)}\n{END.format(name=name)}"


def documented(text: str, name: str) -> str | None:
    """The generated section of ``name`` as it stands in ``text``, or None."""
    m = re.search(re.escape(BEGIN.format(name=name)) + r".*?" + re.escape(END.format(name=name)), text, re.S)
    return m.group(0) if m else None


def write(path: Path = DOC) -> None:
    """Replace each assignment's generated section of ``path`` with the table the catalogue gives now."""
    text = path.read_text()
    for name in ASSIGNMENTS:
        old = documented(text, name)
        if old is None:
            raise SystemExit(f"{path}: no section {BEGIN.format(name=name)!r}; add its two markers first")
        text = text.replace(old, section(name))
    path.write_text(text)


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write()
    else:
        for n in ASSIGNMENTS:
            print(f"### {n}\n\n{table(n)}\n")

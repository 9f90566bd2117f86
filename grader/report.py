"""Reports: Gradescope results.json, feedback.md, grades.csv and the terminal table.

Knows nothing about sandboxes or GANs: it formats GradeResult objects.
"""
from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path

from . import __version__
from .grade import GradeResult


def results_json(result: GradeResult) -> dict:
    """The whole Gradescope schema in one place."""
    tests = []
    for t in result.tests:
        tests.append({
            "name": t.name, "number": t.number, "score": round(t.score, 4), "max_score": t.max_score,
            "status": "passed" if t.passed else "failed", "output": t.output,
            "visibility": t.visibility, "tags": t.tags,
            **({"extra_data": {"manual_points": t.manual_points}} if t.manual else {}),
        })
    for i, err in enumerate(result.grader_errors, 1):
        tests.append({"name": f"Autograder error {i} (staff only)", "score": 0, "max_score": 0,
                      "status": "failed", "output": err, "visibility": "hidden", "tags": ["grader"]})
    lines = [f"dgm-harness {__version__}, assignment {result.assignment}: "
             f"{result.score:g} / {result.max_score:g} points graded automatically."]
    manual = sum(t.manual_points for t in result.tests)
    if manual:
        lines.append(f"{manual:g} more points are graded by course staff.")
    lines += result.problems
    if result.layers:
        lines.append("Isolation: " + "; ".join(result.layers) + ".")
    return {
        "score": round(result.score, 4),
        "execution_time": round(result.execution_time, 3),
        "output": "\n".join(lines),
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
    }


def write_atomic(path: Path, text: str) -> None:
    """Write text to path via a temporary file and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def feedback_md(result: GradeResult) -> str:
    """A readable account of every test for the student."""
    out = [f"# {result.assignment}: {result.submission}", "",
           f"**{result.score:g} / {result.max_score:g}** points graded automatically.", ""]
    out += [f"> {p}" for p in result.problems]
    out += ["| # | test | points | result |", "| --- | --- | --- | --- |"]
    for t in result.tests:
        mark = "manual" if t.manual else ("pass" if t.passed else "FAIL")
        pts = "staff" if t.manual else f"{t.score:g} / {t.max_score:g}"
        out.append(f"| {t.number} | {t.name} | {pts} | {mark} |")
    out.append("")
    for t in result.tests:
        if not t.passed and not t.manual:
            out += [f"## {t.number} {t.name}", "", "```", t.output.strip(), "```", ""]
    return "\n".join(out)


def write_submission_reports(result: GradeResult, out_dir: Path) -> Path:
    """Write results.json and feedback.md into out_dir/<submission>/; return that folder."""
    folder = out_dir / safe_name(result.submission)
    write_atomic(folder / "results.json", json.dumps(results_json(result), indent=2) + "\n")
    write_atomic(folder / "feedback.md", feedback_md(result))
    return folder


def safe_name(name: str) -> str:
    """A file-system-safe folder name for a submission."""
    keep = "".join(c if c.isalnum() or c in "-_.@" else "_" for c in name).strip(".")
    return keep or "submission"


def grades_csv(results: list[GradeResult], path: Path) -> None:
    """One row per submission, one column per automatically graded test, total and status."""
    if not results:
        return
    columns = [t.name for t in results[0].tests if not t.manual]
    rows = [["submission", *columns, "total", "max", "status"]]
    for r in results:
        by_name = {t.name: t.score for t in r.tests}
        rows.append([r.submission, *[f"{by_name.get(c, 0):g}" for c in columns],
                     f"{r.score:g}", f"{r.max_score:g}", r.status])
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".grades.")
    with os.fdopen(fd, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    os.replace(tmp, path)


def table(results: list[GradeResult], details: bool = False) -> str:
    """A plain-text summary table: one line per submission, failed functions named.

    With ``details``, each failed function is followed by the first line of its
    likely-mistake message (or of its failure message).
    """
    width = max([len(r.submission) for r in results] + [10])
    lines = [f"{'submission':<{width}}  {'score':>11}  {'status':<8}  failed tests"]
    for r in results:
        failed = [t.name.split(": ")[0] for t in r.tests if not t.passed and not t.manual]
        failed = list(dict.fromkeys(failed))
        lines.append(f"{r.submission:<{width}}  {r.score:>5g} / {r.max_score:<3g}  {r.status:<8}  "
                     + (", ".join(failed) if failed else "-"))
        if details:
            for fn in failed:
                outputs = [t.output for t in r.tests if t.name.startswith(fn + ":") and not t.passed]
                lines.append(f"{'':<{width}}    {fn}: {_gist(outputs)}")
    return "\n".join(lines)


def _gist(outputs: list[str]) -> str:
    """The most telling line of a function's failure messages, shortened for a table."""
    text = "\n".join(outputs)
    for line in text.splitlines():
        if line.startswith("Likely mistake: "):
            return line.removeprefix("Likely mistake: ")[:110]
    first = text.strip().splitlines()[0] if text.strip() else "failed"
    return first[:110]

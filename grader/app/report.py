"""Reports: Gradescope results.json, feedback.md, grades.csv and the terminal table.

Knows nothing about sandboxes or assignments: it formats GradeResult objects.
"""
from __future__ import annotations

import csv
import json
import os
import re
import tempfile
from pathlib import Path

from .. import __version__
from ..engine.results import GradeResult

# C0 and C1 controls but newline and tab (terminal escapes, carriage returns), and the bidi
# overrides that reorder what a reader sees
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_MD_INLINE = re.compile(r"([\\`\[\]|#])")   # what opens a code span, link, cell or heading


def plain(text: str) -> str:
    """``text`` without control characters (newline and tab kept): student text printed on a
    terminal can neither move the cursor nor recolour or rewrite what the grader printed."""
    return _CONTROL.sub("", str(text).encode("utf-8", "surrogateescape").decode("utf-8", "replace"))


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def md_inline(text: str) -> str:
    """Student text for one markdown line (a heading, a table cell, a quote): one line, HTML and
    markdown punctuation escaped, so it cannot open a heading, a fence, a cell or a tag."""
    one_line = " ".join(plain(text).split())
    return _MD_INLINE.sub(r"\\\1", _html(one_line))


def md_block(text: str) -> list[str]:
    """Student text as a fenced block: the fence is longer than any run of backticks in it (so
    nothing inside can close it), HTML escaped, control characters stripped."""
    body = _html(plain(text))
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall("`+", body)), default=0))
    return [fence, *body.splitlines(), fence]


def test_output(t, stops: list[str] | None = None) -> str:
    """A test's text for the student: what was expected and what came back, then the likely mistake.

    Given the result's ``stops``, a test that a problem stopped points to it (stated once, first)."""
    if stops and 0 < getattr(t, "stopped", 0) <= len(stops):
        return f"Not run: your code stopped before this test (problem {t.stopped} at the top of this report)."
    text = t.output.strip()
    if t.hint:
        text += ("\n" if text else "") + f"Likely mistake: {t.hint.rstrip('.')}."
    return text


def total_line(result: GradeResult) -> str:
    """"X of Y points graded automatically; Z more points graded by course staff" (no markup)."""
    line = f"{result.score:g} of {result.max_score:g} points graded automatically"
    staff = result.manual_points
    return line + (f"; {staff:g} more points graded by course staff" if staff else "") + "."


def staff_items(manual: list) -> str:
    """The items course staff grade, with their points: "1.1 Title (5); 7.2 Title (10 bonus)"."""
    return "; ".join(f"{t.name.removesuffix(' (graded by course staff)')} "
                     f"({t.manual_points:g}{' bonus' if t.bonus else ''})" for t in manual)


def stop_lines(stops: list[str]) -> list[str]:
    """The problems that stopped the code, numbered as the tests refer to them."""
    return [f"Problem {i}: your code stopped before its tests could run: {s}" for i, s in enumerate(stops, 1)]


def results_json(result: GradeResult) -> dict:
    """The whole Gradescope schema in one place."""
    tests = []
    for t in result.tests:
        if t.manual:   # graded by a person later: not a test that passed or failed (listed in "output")
            continue
        tests.append({
            "name": t.name, "number": t.number, "score": round(t.score, 4), "max_score": t.max_score,
            "status": "passed" if t.passed else "failed", "output": test_output(t, result.stops),
            "visibility": t.visibility, "tags": t.tags,
        })
    for i, err in enumerate(result.grader_errors, 1):
        tests.append({"name": f"Autograder error {i} (staff only)", "score": 0, "max_score": 0,
                      "status": "failed", "output": err, "visibility": "hidden", "tags": ["grader"]})
    lines = [f"dgm-harness {__version__}, assignment {result.assignment}: {total_line(result)}"]
    manual = [t for t in result.tests if t.manual]
    if manual:
        lines.append(f"Graded by course staff (not yet graded): {staff_items(manual)}.")
    lines += stop_lines(result.stops)
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
        with os.fdopen(fd, "w", encoding="utf-8", errors="replace") as f:   # never fail on a bad name
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def feedback_md(result: GradeResult) -> str:
    """A readable account of every test for the student."""
    out = [f"# {md_inline(result.assignment)}: {md_inline(result.submission)}", "",
           f"**{md_inline(total_line(result))}**", ""]
    manual = [t for t in result.tests if t.manual]
    if manual:
        out += [f"Graded by course staff (not yet graded): {md_inline(staff_items(manual))}.", ""]
    for i, stop in enumerate(result.stops, 1):
        out += [f"## Problem {i}: your code stopped before its tests could run", "", *md_block(stop), ""]
    for p in result.problems:
        out += [f"> {md_inline(p)}", ""]
    out += ["| # | test | points | result |", "| --- | --- | --- | --- |"]
    for t in result.tests:
        mark = "manual" if t.manual else ("pass" if t.passed else "FAIL")
        if t.stopped and result.stops:
            mark = f"not run (problem {t.stopped})"
        pts = f"{t.manual_points:g} (staff)" if t.manual else f"{t.score:g} / {t.max_score:g}"
        out.append(f"| {md_inline(t.number)} | {md_inline(t.name)} | {pts} | {mark} |")
    out.append("")
    for t in result.tests:
        if not t.passed and not t.manual and not (t.stopped and result.stops):
            out += [f"## {md_inline(t.number)} {md_inline(t.name)}", "", *md_block(test_output(t)), ""]
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
    """One row per submission: points per part (function), total, max and status."""
    if not results:
        return
    parts: list[str] = []
    for r in results:
        for t in r.tests:
            if not t.manual and t.tags and t.tags[0] not in parts:
                parts.append(t.tags[0])
    rows = [["submission", *parts, "total", "max", "status"]]
    for r in results:
        per_part = {p: 0.0 for p in parts}
        for t in r.tests:
            if not t.manual and t.tags:
                per_part[t.tags[0]] += t.score
        rows.append([r.submission, *[f"{per_part[p]:g}" for p in parts],
                     f"{r.score:g}", f"{r.max_score:g}", r.status])
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".grades.")
    with os.fdopen(fd, "w", newline="", encoding="utf-8", errors="replace") as f:
        csv.writer(f).writerows(rows)
    os.replace(tmp, path)


def table(results: list[GradeResult], details: bool = False) -> str:
    """A plain-text summary table: one line per submission, failed functions named.

    With ``details``, each failed function is followed by the first line of its
    likely-mistake message (or of its failure message).
    """
    width = max([len(plain(r.submission)) for r in results] + [10])
    lines = [f"{'submission':<{width}}  {'score':>11}  {'status':<8}  failed tests"]
    for r in results:
        failed = [t.tags[0] for t in r.tests if not t.passed and not t.manual and t.tags]
        failed = list(dict.fromkeys(failed))
        lines.append(f"{plain(r.submission):<{width}}  {r.score:>5g} / {r.max_score:<3g}  {r.status:<8}  "
                     + (", ".join(failed) if failed else "-"))
        if details:
            for fn in failed:
                lines.append(f"{'':<{width}}    {fn}: {_gist([t for t in r.tests if t.tags[:1] == [fn] and not t.passed])}")
    return plain("\n".join(lines))


def _gist(tests: list) -> str:
    """The most telling words about a function's failed tests, shortened for a table: the likely
    mistake when a check named one, else the first line of the first message."""
    for t in tests:
        if t.hint:
            return t.hint[:110]
    first = next((t.output.strip().splitlines()[0] for t in tests if t.output.strip()), "failed")
    return first[:110]


def summary(results: list[GradeResult]) -> str:
    """Markdown for staff: the distribution of totals and the pass rate of every test."""
    if not results:
        return "# Summary\n\nNo submissions.\n"
    top = max(r.max_score for r in results) or 1.0
    bins = [0] * 10
    for r in results:
        bins[min(9, int(10 * r.score / top))] += 1
    lines = [f"# Summary: {len(results)} submissions", "",
             f"Mean {sum(r.score for r in results) / len(results):.2f} / {top:g}; "
             f"statuses: " + ", ".join(f"{md_inline(s)} {sum(r.status == s for r in results)}"
                                       for s in sorted({r.status for r in results})), "",
             "## Totals", "", "```"]
    for i, n in enumerate(bins):
        lines.append(f"{i * top / 10:>6.1f}-{(i + 1) * top / 10:<6.1f} {'#' * n} {n}")
    lines += ["```", "", "## Pass rate of every test (lowest first)", "", "| test | passed | rate |",
              "| --- | --- | --- |"]
    for name, passed, total in pass_rates(results):
        lines.append(f"| {md_inline(name)} | {passed} / {total} | {passed / total:.0%} |")
    return "\n".join(lines) + "\n"


def pass_rates(results: list[GradeResult]) -> list[tuple[str, int, int]]:
    """(test name, submissions passing it, submissions) for every automatic test, lowest rate first."""
    counts: dict[str, list[int]] = {}
    for r in results:
        for t in r.tests:
            if not t.manual:
                c = counts.setdefault(t.name, [0, 0])
                c[0] += t.passed
                c[1] += 1
    return sorted(((n, p, tot) for n, (p, tot) in counts.items()), key=lambda x: (x[1] / x[2], x[0]))


def summary_png(results: list[GradeResult], path: Path) -> None:
    """The histogram of totals and the pass rate of every test, as one figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = pass_rates(results)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, max(4, 0.28 * len(rates) + 1)),
                                   gridspec_kw={"width_ratios": [1, 1.6]})
    top = max((r.max_score for r in results), default=1.0) or 1.0
    ax1.hist([r.score for r in results], bins=10, range=(0, top), color="tab:blue", edgecolor="white")
    ax1.set(xlabel="total (automatic points)", ylabel="submissions", title=f"{len(results)} submissions")
    ax1.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax2.barh([n for n, _, _ in rates], [p / t for _, p, t in rates], color="tab:green")
    ax2.set(xlim=(0, 1), xlabel="fraction of submissions passing", title="pass rate of every test")
    ax2.tick_params(axis="y", labelsize=7)
    ax2.invert_yaxis()   # the most failed tests on top: the common mistakes
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def zip_all(out_dir: Path, zip_path: Path) -> None:
    """One archive of everything in out_dir (for upload), written atomically."""
    import zipfile

    tmp = zip_path.with_name(zip_path.name + ".part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(out_dir.rglob("*")):
            hidden = any(part.startswith(".") for part in f.relative_to(out_dir).parts)
            if f.is_file() and not hidden and f.resolve() not in (zip_path.resolve(), tmp.resolve()):
                zf.write(f, f.relative_to(out_dir).as_posix())
    os.replace(tmp, zip_path)

"""Gradescope's side of the autograder bundle: ``run_autograder`` runs ``python -m grader.app.gradescope run``.

It grades ``/autograder/submission`` into ``/autograder/results/results.json``
and always leaves a valid results file there: when grading fails, or the grader
cannot even be imported, the student sees one visible "the autograder failed"
message and staff a hidden test with the traceback. The bundle itself is built
by :mod:`grader.builders.autograder`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path


def _fallback(message: str, detail: str) -> dict:
    """A valid Gradescope result saying the grader failed, with the details for staff only."""
    return {"score": 0, "output": message, "visibility": "visible", "stdout_visibility": "hidden",
            "tests": [{"name": "Autograder error (staff only)", "score": 0, "max_score": 0, "status": "failed",
                       "output": detail[-8000:], "visibility": "hidden", "tags": ["grader-error"]}]}


def run(assignment: str, submission: Path, results: Path) -> int:
    """Grade one Gradescope submission folder into ``results``; always writes a valid file.

    Imports the rest of the grader inside the guard, so that even a grader that
    cannot be imported yields a result for the student and a traceback for staff.
    """
    try:
        from ..engine.grade import start_zygote

        start_zygote([assignment])   # before anything secret is read: one torch for grader and worker
        from ..engine.assignment import load_assignment
        from ..engine.grade import grade
        from . import report

        a = load_assignment(assignment)
        r = grade(a, submission, name="submission", hidden=(results.parent,))
        data = report.results_json(r)
        code = 3 if r.grader_errors else 0
    except BaseException:  # noqa: BLE001 - the student must get a valid result, staff the traceback
        data = _fallback("The autograder failed on this submission. Course staff have been told; "
                         "your upload is kept and will be graded.", traceback.format_exc())
        code = 3
    results.parent.mkdir(parents=True, exist_ok=True)
    tmp = results.with_name(results.name + ".part")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, results)
    return code


def main(argv: list[str] | None = None) -> int:
    """``python -m grader.app.gradescope run ...``: the entry point of ``run_autograder``."""
    parser = argparse.ArgumentParser(prog="python -m grader.app.gradescope")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="grade one Gradescope submission folder")
    p.add_argument("--assignment", required=True)
    p.add_argument("--submission", type=Path, default=Path("/autograder/submission"))
    p.add_argument("--results", type=Path, default=Path("/autograder/results/results.json"))
    args = parser.parse_args(argv)
    return run(args.assignment, args.submission, args.results)


def _clean_start() -> None:
    """As ``grader``'s entry does: where servers are forked from a zygote, start over with nothing of
    the caller's environment or arguments, fork the zygote first, then take them back."""
    from ..sandbox import forkserver

    names = forkserver.clean_start()
    if names is not None:
        try:
            from ..engine.grade import start_zygote

            start_zygote(names)
        except Exception:  # noqa: BLE001 - a grader that cannot be imported: run() reports it to staff
            pass
        forkserver.restore()
        return
    argv = sys.argv[1:]
    name = argv[argv.index("--assignment") + 1] if "--assignment" in argv[:-1] else ""
    try:
        from ..sandbox.runner import would_fork

        if name and would_fork():
            forkserver.reexec_clean("grader.app.gradescope", [name])
    except Exception:  # noqa: BLE001 - the run itself meets the same problem and reports it
        return


if __name__ == "__main__":
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")   # before numpy loads: its thread pools would only spin (see cli)
    from ..sandbox.isolation import run_then_clean_up

    _clean_start()
    code = run_then_clean_up(main)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

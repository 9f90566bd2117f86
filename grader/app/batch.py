"""Grade a class: many submissions in parallel, with progress, an ETA and incremental regrading.

A submission is graded again only when its upload or the grader changed: each
output folder keeps ``.grade-cache.json`` with the upload's content hash, the
grader's fingerprint (its code, the assignment's configuration and keys, the
reference solutions) and the result.
"""
from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TextIO

from .. import __version__
from ..engine.config import Assignment
from ..engine.grade import all_failed, grade
from ..engine.paths import PACKAGE_DIR
from ..engine.results import GradeResult
from ..engine.submission import tree_sha256
from . import report

CACHE_FILE = ".grade-cache.json"


def input_hash(path: Path) -> str | None:
    """Content hash of an upload as it lies on disk (a file's bytes, or every file of a folder);
    None when it cannot be read (then it is graded, and its result is not stored)."""
    try:
        return tree_sha256(path)
    except (OSError, ValueError):
        return None


def grader_fingerprint(assignment: Assignment, public_only: bool = False) -> str:
    """What a result depends on besides the upload: grader code, the assignment's folder (and those
    it uses), its settings, keys and solutions."""
    from ..sandbox import forkserver

    forkserver.taint("the grader's fingerprint (solutions read)")
    root = Path(assignment.folder).parent
    folders = [root / name for name in (assignment.name, *assignment.uses)]
    parts = [__version__, repr(assignment), str(public_only), tree_sha256(PACKAGE_DIR),
             *(tree_sha256(f, skip=("examples",)) for f in folders), tree_sha256(root.parent / "solutions")]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def cached_result(folder: Path, upload: str, fingerprint: str) -> GradeResult | None:
    """The stored result in ``folder`` when it was made from the same upload by the same grader."""
    try:
        data = json.loads((folder / CACHE_FILE).read_text())
        if data["input"] == upload and data["grader"] == fingerprint:
            return GradeResult.from_dict(data["result"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def store_result(folder: Path, upload: str, fingerprint: str, result: GradeResult) -> None:
    report.write_atomic(folder / CACHE_FILE, json.dumps(
        {"input": upload, "grader": fingerprint, "result": result.to_dict()}) + "\n")


class Progress:
    """A progress bar with an ETA on a terminal; one line per submission otherwise (logs, CI)."""

    def __init__(self, total: int, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.total, self.done, self.skipped = total, 0, 0
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.monotonic()
        self.lock = threading.Lock()

    def eta(self) -> float | None:
        """Seconds left, from the pace of the submissions actually graded (not the cached ones)."""
        graded = self.done - self.skipped
        if graded == 0:
            return None
        pace = (time.monotonic() - self.start) / graded
        return pace * (self.total - self.done)

    def say(self, text: str) -> None:
        """A line of its own between progress updates (not when quiet)."""
        with self.lock:
            if not self.quiet:
                self.stream.write(("\n" if self.tty else "") + text + "\n")
                self.stream.flush()

    def update(self, result: GradeResult, cached: bool) -> None:
        with self.lock:
            self.done += 1
            self.skipped += cached
            if self.quiet:
                return
            eta = self.eta()
            left = "" if self.done == self.total or eta is None else f", ETA {_clock(eta)}"
            note = " (unchanged, not regraded)" if cached else f" ({result.status})"
            if self.tty:
                width = 30
                filled = int(width * self.done / max(self.total, 1))
                bar = "#" * filled + "." * (width - filled)
                line = (f"\r[{bar}] {self.done}/{self.total} {_clock(time.monotonic() - self.start)}{left} "
                        f"| {report.plain(result.submission)[:24]}: {result.score:g}/{result.max_score:g}{note}")
                self.stream.write(line[:160].ljust(100) + ("\n" if self.done == self.total else ""))
            else:
                self.stream.write(f"[{self.done}/{self.total}] {report.plain(result.submission)}: "
                                  f"{result.score:g}/{result.max_score:g}{note}{left}\n")
            self.stream.flush()


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds} s"


def grade_all(assignment: Assignment, paths: list[Path], names: list[str], out: Path, *,
              jobs: int = 1, force: bool = False, quiet: bool = False,
              hidden: tuple[Path, ...] = ()) -> list[GradeResult]:
    """Grade ``paths`` (reported as ``names``) into ``out``/<name>/, ``jobs`` at a time.

    Unchanged submissions keep their stored result unless ``force``. One broken
    submission never stops the batch: grade() turns student failures into
    results, and anything else is recorded as a grader error for that submission.
    With ``jobs`` > 1, a submission with a timed-out function is graded again alone at the end,
    and that grade is the one kept.

    ``jobs`` submissions are in the sandbox at a time (one worker server each); twice as many
    threads keep them busy, loading the next submissions and checking the last ones meanwhile.
    """
    fingerprint = grader_fingerprint(assignment)
    progress = Progress(len(paths), quiet=quiet)
    results: list[GradeResult | None] = [None] * len(paths)
    hidden = (out, *paths, *hidden)   # no student may read another's upload or results

    slots = threading.BoundedSemaphore(max(1, jobs))   # submissions whose probes run at once

    def graded(i: int) -> GradeResult:
        try:
            return grade(assignment, paths[i], name=names[i], hidden=hidden, probe_slot=slots)
        except Exception as err:  # noqa: BLE001 - a grader fault costs this submission, not the batch
            why = f"the grader failed on this submission ({err}); course staff have been told"
            return GradeResult(assignment.name, names[i], "", all_failed(assignment, why, False), "error",
                               0.0, problems=[why], grader_errors=[traceback.format_exc()])

    def finish(i: int, result: GradeResult, upload: str | None, cached: bool) -> None:
        if not cached:
            report.write_submission_reports(result, out)
            if not result.grader_errors and upload is not None:
                store_result(out / names[i], upload, fingerprint, result)
        results[i] = result
        progress.update(result, cached)

    again: list[tuple[int, str | None]] = []   # timed out beside other submissions: graded again alone
    again_lock = threading.Lock()

    def one(i: int) -> None:
        upload = input_hash(paths[i])
        result = None if force or upload is None else cached_result(out / names[i], upload, fingerprint)
        if result is not None:
            finish(i, result, upload, True)
            return
        result = graded(i)
        # With one probe slot no other submission's code ran beside it (only the grader's own
        # loading and checks, whose CPU the probe's run delay excuses): already graded alone.
        if jobs > 1 and result.timeouts:
            with again_lock:
                again.append((i, upload))
            return
        finish(i, result, upload, False)

    pool = ThreadPoolExecutor(max_workers=2 * max(1, jobs))
    try:
        list(pool.map(one, range(len(paths))))
    except BaseException:   # SIGTERM or Ctrl-C: leave now; the caller stops the workers under the threads
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    # A function that ran out of time while others were graded may only have been starved of CPU:
    # it is judged on a run with nothing beside it (a hog's grading costs it twice; an honest one's, once).
    if again:
        who = ", ".join(report.plain(names[i]) for i, _ in sorted(again))
        progress.say(f"grading {len(again)} submission(s) again alone, a function of theirs having timed out "
                     f"beside others: {who}")
    for i, upload in sorted(again):
        finish(i, graded(i), upload, False)
    return [r for r in results if r is not None]

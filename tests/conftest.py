"""Shared fixtures: grading helpers that keep the test suite fast."""
from pathlib import Path

import pytest

from grader.config import load_assignment
from grader.grade import GradeResult, grade
from grader.paths import REPO_ROOT

REFERENCE_GAN = (REPO_ROOT / "solutions" / "codebase" / "gan.py").read_text()


@pytest.fixture(scope="session")
def gan_assignment():
    return load_assignment("gan")


def write_gan(folder: Path, source: str) -> Path:
    """A submission folder holding codebase/gan.py with ``source``."""
    (folder / "codebase").mkdir(parents=True, exist_ok=True)
    (folder / "codebase" / "gan.py").write_text(source)
    return folder


def by_function(result: GradeResult) -> dict[str, dict[str, tuple[bool, str]]]:
    """function -> check name suffix ('d_loss value...' etc.) -> (passed, message)."""
    out: dict[str, dict[str, tuple[bool, str]]] = {}
    for t in result.tests:
        if t.manual or t.tags == ["answers"]:   # short answers are tested in test_answers.py
            continue
        fn, _, test = t.name.partition(": ")
        out.setdefault(t.tags[0], {})[test] = (t.passed, t.output)
    return out


__all__ = ["REFERENCE_GAN", "write_gan", "by_function", "grade"]

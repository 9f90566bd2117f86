"""What grading one submission yields: a row per test and the submission's result, as plain fields.

The pipeline (:mod:`grader.engine.grade`) fills them in; reports, the batch cache
and the CLI read them, and need nothing else of the engine.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class TestResult:
    """One row of results.json."""

    name: str
    number: str
    tags: list[str]              # the student function(s) exercised
    score: float
    max_score: float
    passed: bool
    output: str                  # what was expected and what came back
    visibility: str
    hint: str = ""               # the likely mistake, or what to do
    manual: bool = False
    manual_points: float = 0.0   # points a person grades (manual items only)
    bonus: bool = False          # a manual item's points are extra credit
    stopped: int = 0             # 1 + index in GradeResult.stops of the problem that stopped it (0: none)


@dataclass
class GradeResult:
    """Everything a report needs about one graded submission."""

    assignment: str
    submission: str
    sha256: str
    tests: list[TestResult]
    status: str                  # ok | error | timeout | crashed | invalid (worst part outcome)
    execution_time: float
    layers: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)   # submission-level messages
    grader_errors: list[str] = field(default_factory=list)  # tracebacks for staff
    stops: list[str] = field(default_factory=list)   # problems that stopped tests before they ran, each once
    timeouts: list[str] = field(default_factory=list)   # probes that ran out of time (batch grades them again alone)

    @property
    def manual_points(self) -> float:
        """Points graded by course staff (bonus items not counted)."""
        return sum(t.manual_points for t in self.tests if t.manual and not t.bonus)

    @property
    def score(self) -> float:
        return sum(t.score for t in self.tests if not t.manual)

    @property
    def max_score(self) -> float:
        return sum(t.max_score for t in self.tests if not t.manual)

    def to_dict(self) -> dict:
        """Plain data (JSON-ready), for the batch cache."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> GradeResult:
        """The inverse of :meth:`to_dict`."""
        return cls(**{**data, "tests": [TestResult(**t) for t in data["tests"]]})

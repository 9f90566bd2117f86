"""assignment.yaml -> frozen dataclasses; unknown or missing keys are errors that name the key."""
from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from .paths import ASSIGNMENTS_DIR

VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")


class ConfigError(ValueError):
    """assignment.yaml is malformed; the message names the file and the key."""


@dataclass(frozen=True)
class Test:
    """One graded test: a registered check applied to a part's probe."""

    name: str                    # shown to students, e.g. "d_loss value and gradient"
    check: str                   # id of a registered check, e.g. "gan.d_loss"
    points: float = 0.0          # max score of this test
    public: bool = False         # shipped to students and run by `grader check`
    visibility: str = ""         # Gradescope visibility; default visible if public else after_published
    args: dict | None = None     # extra arguments for the check (e.g. which short-answer item)


@dataclass(frozen=True)
class Part:
    """A graded student function with the tests that exercise it."""

    name: str                    # e.g. "1.2"
    function: str                # the student function, also the test's tag
    probe: str                   # probe kind run in the worker, e.g. "gan_loss"
    tests: tuple[Test, ...]
    args: dict | None = None     # extra probe arguments (e.g. conditional: true)
    id: str = ""                 # probe id when one function has several parts (default: function)

    @property
    def key(self) -> str:
        """The probe id of this part, unique within the assignment."""
        return self.id or self.function


@dataclass(frozen=True)
class ManualPart:
    """A part a person grades (a derivation); listed in results with its points."""

    name: str
    points: float
    description: str = ""
    bonus: bool = False          # extra credit: listed, but not part of the total


@dataclass(frozen=True)
class Assignment:
    """One assignment: its student files, graded parts and manual parts."""

    name: str
    title: str
    module: str                          # student file holding the graded functions
    required_files: tuple[str, ...]      # must be in a submission
    parts: tuple[Part, ...]
    manual: tuple[ManualPart, ...] = ()
    optional_files: tuple[str, ...] = () # globs packaged when present (sample grids, ...)
    support_dir: str = ""                # starter folder whose files fill in what a submission lacks
    probe_timeout_s: float = 20.0
    seed: int = 236

    @property
    def auto_points(self) -> float:
        return sum(t.points for p in self.parts for t in p.tests)

    @property
    def total_points(self) -> float:
        return self.auto_points + sum(m.points for m in self.manual if not m.bonus)


def _build(cls: type, data: Any, where: str) -> dict:
    """Check ``data`` against the fields of ``cls``; return the kwargs or raise ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(names))}")
    required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
    missing = sorted(required - set(data))
    if missing:
        raise ConfigError(f"{where}: missing key(s) {', '.join(missing)}")
    return dict(data)


def parse_assignment(data: Any, where: str) -> Assignment:
    """Build an Assignment from parsed YAML, validating every level."""
    top = _build(Assignment, data, where)
    parts = []
    for i, raw in enumerate(top.get("parts") or []):
        p = _build(Part, raw, f"{where}: parts[{i}]")
        tests = []
        for j, rt in enumerate(p.get("tests") or []):
            t = _build(Test, rt, f"{where}: parts[{i}].tests[{j}]")
            vis = t.get("visibility") or ("visible" if t.get("public") else "after_published")
            if vis not in VISIBILITIES:
                raise ConfigError(f"{where}: parts[{i}].tests[{j}].visibility must be one of {VISIBILITIES}")
            tests.append(Test(**{**t, "visibility": vis, "points": float(t.get("points", 0))}))
        parts.append(Part(**{**p, "tests": tuple(tests)}))
    keys = [part.key for part in parts]
    if len(keys) != len(set(keys)):
        raise ConfigError(f"{where}: two parts share a probe id; give one of them an 'id'")
    manual = [ManualPart(**_build(ManualPart, m, f"{where}: manual[{i}]"))
              for i, m in enumerate(top.get("manual") or [])]
    top.update(parts=tuple(parts), manual=tuple(manual),
               required_files=tuple(top["required_files"]),
               optional_files=tuple(top.get("optional_files", ())))
    return Assignment(**top)


def available(root: Path = ASSIGNMENTS_DIR) -> list[str]:
    """Names of the assignments under ``root`` that have an assignment.yaml."""
    return sorted(p.parent.name for p in root.glob("*/assignment.yaml"))


def load_assignment(name: str, root: Path = ASSIGNMENTS_DIR) -> Assignment:
    """Load ``assignments/<name>/assignment.yaml``."""
    path = root / name / "assignment.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown assignment {name!r}; available: {', '.join(available()) or 'none'}")
    with open(path) as f:
        data = yaml.safe_load(f)
    return parse_assignment(data, str(path))

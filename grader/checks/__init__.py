"""The check registry: a check is a small function registered under an id.

A check reads the outcome of its part's probe (plain arrays from the worker),
may evaluate the reference on the same draws, and returns a CheckResult. It
never runs student code and never raises for a student's mistake.

Adding a check: write a decorated function in a plugin module; adding a
plugin: one line in PLUGINS. Modules ending in ``_hidden`` hold the checks that
need the reference solutions; a student release ships without them.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

from ..config import Assignment, Part
from ..sandbox import ProbeOutcome

PLUGINS = (
    "grader.checks.gan",
    "grader.checks.gan_hidden",
)


@dataclass(frozen=True)
class CheckResult:
    """Verdict of one check."""

    passed: bool
    message: str = ""   # what was expected, what came back, and a hint


@dataclass
class CheckContext:
    """Everything a check may look at."""

    assignment: Assignment
    part: Part
    outcome: ProbeOutcome
    probe_args: dict
    cache: dict = field(default_factory=dict)  # shared by the tests of one part


CheckFn = Callable[[CheckContext], CheckResult]
REGISTRY: dict[str, CheckFn] = {}


def register(check_id: str) -> Callable[[CheckFn], CheckFn]:
    """Decorator: make ``fn`` available as ``check_id`` in assignment.yaml."""
    def deco(fn: CheckFn) -> CheckFn:
        if check_id in REGISTRY:
            raise ValueError(f"check {check_id!r} registered twice")
        REGISTRY[check_id] = fn
        return fn
    return deco


_loaded = False


def load_plugins() -> None:
    """Import every plugin module once (hidden ones may be absent in a student bundle)."""
    global _loaded
    if _loaded:
        return
    for name in PLUGINS:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:
            if not (name.endswith("_hidden") and err.name == name):
                raise
    _loaded = True


def get(check_id: str) -> CheckFn | None:
    """The registered check, or None when it is not available (hidden check in a release)."""
    load_plugins()
    return REGISTRY.get(check_id)

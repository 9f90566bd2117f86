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
    "grader.checks.gan1d",
    "grader.checks.gan1d_hidden",
    "grader.checks.vae",
    "grader.checks.vae_hidden",
    "grader.checks.answers",
    "grader.checks.answers_hidden",
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
    test_args: dict = field(default_factory=dict)   # the test's own arguments from assignment.yaml
    files_dir: object = None                         # the submission's files (data-only checks read them)


CheckFn = Callable[[CheckContext], CheckResult]
REGISTRY: dict[str, CheckFn] = {}
ValidatorFn = Callable[[dict, dict], "str | None"]
VALIDATORS: dict[str, ValidatorFn] = {}


def register_validator(probe_kind: str) -> Callable[[ValidatorFn], ValidatorFn]:
    """Decorator: ``fn(arrays, probe_args) -> problem or None`` vets a probe kind's raw output.

    The worker is untrusted, so every array a check will read must be checked for
    presence, rank, size and range here, before any check runs.
    """
    def deco(fn: ValidatorFn) -> ValidatorFn:
        VALIDATORS[probe_kind] = fn
        return fn
    return deco


def validate(probe_kind: str, arrays: dict, probe_args: dict) -> str | None:
    """None when the arrays fit the probe kind's schema, else what is wrong (no validator: wrong)."""
    load_plugins()
    fn = VALIDATORS.get(probe_kind)
    if fn is None:
        return f"no validator for probe kind {probe_kind!r}"
    return fn(arrays, probe_args)


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

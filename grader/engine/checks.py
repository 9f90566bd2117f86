"""Checks: how an assignment judges what its probes returned (parent side; no student code runs here).

A check is a small function in an assignment's ``checks.py`` (public: shipped to
students) or ``hidden.py`` (needs the reference solutions; never shipped),
declared with the probe kind whose outputs it reads and the keys it reads::

    @check("value", probe="density", reads=("value", "grad"))
    def value(ctx: CheckContext) -> CheckResult:
        ...
        return CheckResult(False, "value: got 9.5, expected -9.5", hint="the sign is flipped")

The loader checks those declarations against the probe's schema when the
assignment loads, and a check can read nothing else. It returns a
:class:`CheckResult`: pass or fail, what was expected and what came back, and
a hint (the likely mistake); reports format these fields and parse nothing.
"""
from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class CheckResult:
    """Verdict of one check."""

    passed: bool
    message: str = ""   # what was expected and what came back
    hint: str = ""      # the likely mistake, or what to do about it


@dataclass(frozen=True)
class CheckSpec:
    """A registered check: its local name, function and what it reads."""

    name: str
    fn: Callable = field(compare=False)
    probe: str | None       # the probe kind whose outputs it reads (None: reads files, not outputs)
    reads: tuple[str, ...]  # output keys or patterns (g_in*) it reads
    hidden: bool = False    # set by the loader: defined in hidden.py


def check(name: str, *, probe: str | None = None, reads: tuple[str, ...] = ()) -> Callable:
    """Decorator: declare ``fn(ctx) -> CheckResult`` as check ``name`` reading ``reads`` of ``probe``."""
    def deco(fn: Callable) -> Callable:
        fn.__check__ = CheckSpec(name, fn, probe, tuple(reads))
        return fn
    return deco


def specs_in(module: Any, hidden: bool) -> dict[str, CheckSpec]:
    """The checks a module declares, by name."""
    out: dict[str, CheckSpec] = {}
    for value in vars(module).values():
        spec = getattr(value, "__check__", None)
        if getattr(value, "__module__", None) != module.__name__:
            continue   # imported from another module (a public check used by a hidden one)
        if isinstance(spec, CheckSpec):
            if spec.name in out:
                raise ValueError(f"{module.__name__} declares check {spec.name!r} twice")
            out[spec.name] = CheckSpec(spec.name, spec.fn, spec.probe, spec.reads, hidden)
    return out


class UndeclaredOutput(RuntimeError):
    """A check read an output it did not declare in ``reads`` (a bug in the assignment)."""


class Outputs(Mapping):
    """The validated arrays of one probe, limited to what the check declared it reads."""

    def __init__(self, arrays: dict[str, np.ndarray], reads: tuple[str, ...], check: str) -> None:
        self._arrays, self._reads, self._check = arrays, reads, check
        self._seen: dict[str, bool] = {}   # key -> allowed (checks read the same keys many times)

    def _allowed(self, key: str) -> bool:
        allowed = self._seen.get(key)
        if allowed is None:
            allowed = key in self._reads or any(fnmatch.fnmatchcase(key, p) for p in self._reads if "*" in p)
            self._seen[key] = allowed
        return allowed

    def __getitem__(self, key: str) -> np.ndarray:
        if not self._allowed(key):
            raise UndeclaredOutput(f"check {self._check!r} reads {key!r}, which it does not declare in reads=")
        return self._arrays[key]

    def __iter__(self) -> Iterator[str]:
        return (k for k in self._arrays if self._allowed(k))

    def __len__(self) -> int:
        return sum(1 for _ in self)


@dataclass
class CheckContext:
    """Everything a check may look at."""

    assignment: Any                 # grader.engine.config.Assignment
    part: Any                       # grader.engine.config.Part
    outputs: Mapping[str, np.ndarray]
    args: dict                      # the probe's arguments (function, seed, the part's args)
    test_args: dict = field(default_factory=dict)   # the test's own arguments from assignment.yaml
    files_dir: Path | None = None   # the submission's files (checks of data files read them)
    cache: dict = field(default_factory=dict)       # shared by the tests of one part

"""Read untrusted input (uploads, notebooks, answers files) in a helper process with bounded time and memory.

The grader itself runs with whatever rights it was given (often root). A zip,
a notebook or a YAML file crafted to explode (a billion laughs, a thousand
nested brackets, a few MB of expressions) must cost a message for that
submission, never the grader's memory or a stuck batch. So every parse of
student input runs here: in a separate Python process (one per grading
thread, reused) with an address-space limit, a CPU limit and a wall-clock
timeout per call. A task is a module-level function of plain data that its
own module marks with :func:`task`, naming the exceptions that mean "the input
is at fault"; it returns JSON-able data, or raises one of those, which reaches
the caller as that class. The helper imports a task's module by name when it is
called: this module names none of them.
"""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import isolation

MEMORY_MB = 1536          # address space of the helper
TIMEOUT_S = 60.0          # wall clock of one call
CALLS_PER_HELPER = 500    # a fresh helper now and then: its CPU limit covers its whole life
PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent.parent)   # the folder holding grader/


class InputTooLarge(ValueError):
    """The input could not be read within the helper's time or memory; the message says which."""


def task(*user_errors: type[Exception]) -> Callable[[Callable], Callable]:
    """Decorator: a module-level function of plain data that :func:`call` may run in the helper.

    ``user_errors``: the exceptions that mean the input is at fault (a message for the
    student); they reach the caller as that class. Any other exception is a grader bug.
    """
    def deco(fn: Callable) -> Callable:
        fn.__bounded_errors__ = user_errors
        return fn
    return deco


def _name(fn: Callable) -> str:
    return f"{fn.__module__}:{fn.__qualname__}"


def _resolve(name: str) -> Callable:
    """The task ``module:function``, imported here; ValueError for a function not marked with :func:`task`."""
    module, _, attr = name.partition(":")
    fn = getattr(importlib.import_module(module), attr)
    if not hasattr(fn, "__bounded_errors__"):
        raise ValueError(f"{name} is not a bounded task")
    return fn


# --------------------------------------------------------------------------- the helper (child side)


def _limit_self() -> None:
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_MB << 20, MEMORY_MB << 20))
        cpu = int(TIMEOUT_S * 4)
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, ValueError, OSError):
        pass


def serve() -> None:
    """The helper's loop: read one length-prefixed JSON call from stdin, answer on stdout."""
    _limit_self()
    sys.setrecursionlimit(2000)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        head = stdin.read(8)
        if len(head) < 8:
            return
        call = json.loads(stdin.read(int.from_bytes(head, "big")))
        fn = None
        try:
            fn = _resolve(call["task"])
            answer = {"ok": fn(**call["kwargs"])}
        except RecursionError:
            answer = {"too_large": "it is nested too deeply to be read"}
        except MemoryError:
            answer = {"too_large": f"reading it needs more than {MEMORY_MB} MB"}
        except Exception as err:  # noqa: BLE001 - sorted below: the student's input, or our bug
            kinds = [i for i, cls in enumerate(getattr(fn, "__bounded_errors__", ())) if isinstance(err, cls)]
            answer = {"user": kinds[0], "message": str(err)} if kinds else {"bug": traceback.format_exc()}
        body = json.dumps(answer).encode()
        stdout.write(len(body).to_bytes(8, "big") + body)
        stdout.flush()


# --------------------------------------------------------------------------- the grader's side


class _Helper:
    def __init__(self) -> None:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
               "PYTHONPATH": PACKAGE_PARENT, "PYTHONDONTWRITEBYTECODE": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-s", "-c", "from grader.sandbox.bounded import serve; serve()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
            start_new_session=True, cwd="/" if os.name == "posix" else None)
        self.calls = 0
        self.lock = threading.Lock()

    def close(self) -> None:
        try:
            self.proc.kill()
        except OSError:
            pass
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass

    def call(self, task: str, kwargs: dict, timeout_s: float) -> dict | None:
        """The helper's answer, or None when it died or ran out of time (it is then closed)."""
        body = json.dumps({"task": task, "kwargs": kwargs}).encode()
        result: list = []

        def exchange() -> None:
            try:
                self.proc.stdin.write(len(body).to_bytes(8, "big") + body)
                self.proc.stdin.flush()
                head = self.proc.stdout.read(8)
                if len(head) == 8:
                    result.append(json.loads(self.proc.stdout.read(int.from_bytes(head, "big"))))
            except (OSError, ValueError):
                pass

        self.calls += 1
        reader = threading.Thread(target=exchange, daemon=True)
        reader.start()
        reader.join(timeout_s)
        if reader.is_alive() or not result:
            self.close()
            reader.join(5)
            return None
        return result[0]


_LOCAL = threading.local()
_ALL: list[_Helper] = []
_ALL_LOCK = threading.Lock()


_SPARE: list[_Helper] = []   # started ahead by prestart(), for the first thread that needs one


def prestart() -> None:
    """Start a helper now, for the first thread that needs one: a cold ``grader grade`` would
    otherwise wait for its interpreter (about 0.1 s) after torch's import instead of beside it."""
    with _ALL_LOCK:
        if not _SPARE:
            helper = _Helper()
            _SPARE.append(helper)
            _ALL.append(helper)


def _helper() -> _Helper:
    helper = getattr(_LOCAL, "helper", None)
    if helper is None or helper.proc.poll() is not None or helper.calls >= CALLS_PER_HELPER:
        if helper is not None:
            helper.close()
        with _ALL_LOCK:
            spare = _SPARE.pop() if _SPARE else None
        if spare is not None and spare.proc.poll() is None:
            helper = _LOCAL.helper = spare
        else:
            helper = _LOCAL.helper = _Helper()
            with _ALL_LOCK:
                _ALL.append(helper)
    return helper


def shutdown() -> None:
    """Stop every helper (each grading thread has one)."""
    with _ALL_LOCK:
        helpers = list(_ALL)
        _ALL.clear()
        _SPARE.clear()
    for h in helpers:
        h.close()


isolation.on_exit(shutdown)


def call(task: Callable, *, timeout_s: float = TIMEOUT_S, **kwargs: Any) -> Any:
    """Run ``task(**kwargs)`` in this thread's helper; its return value.

    Raises:
        TypeError: ``task`` is not marked with :func:`task`.
        InputTooLarge: the input took more than the time or memory the helper has.
        one of the task's ``user_errors``: the task raised it (a message for the student).
        RuntimeError: the task failed in an unexpected way (a grader bug; the traceback is attached).
    """
    errors = getattr(task, "__bounded_errors__", None)
    if errors is None:
        raise TypeError(f"{task!r} is not a bounded task (mark it with @bounded.task)")
    answer = _helper().call(_name(task), kwargs, timeout_s)
    if answer is None:
        raise InputTooLarge(f"it could not be read within {timeout_s:g} s and {MEMORY_MB} MB "
                            "(far too large, or built to explode)")
    if "ok" in answer:
        return answer["ok"]
    if "too_large" in answer or "user" in answer:
        cls = InputTooLarge if "too_large" in answer else errors[int(answer["user"])]
        message = answer.get("too_large", answer.get("message"))
        raise cls(str(message).encode("utf-8", "replace").decode("utf-8"))
    raise RuntimeError(f"bounded task {_name(task)} failed:\n{answer.get('bug', answer)}")

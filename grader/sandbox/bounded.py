"""Read untrusted input (uploads, notebooks, answers files) in a helper process with bounded time and memory.

The grader itself runs with whatever rights it was given (often root). A zip,
a notebook or a YAML file crafted to explode (a billion laughs, a thousand
nested brackets, a few MB of expressions) must cost a message for that
submission, never the grader's memory or a stuck batch. So every parse of
student input runs here: in a separate Python process (one per grading
thread, reused) with an address-space limit, a CPU limit and a wall-clock
timeout per call. Tasks are plain functions of plain data listed in
:data:`TASKS`; they return JSON-able data, or raise one of the error classes
in :data:`USER_ERRORS`, which reach the caller as that class.
"""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import threading
import traceback
from pathlib import Path

from . import isolation

TASKS = {
    "load_submission": "grader.engine.submission:load_into",
    "compile_sources": "grader.engine.submission:compile_sources",
    "extract_notebook": "grader.engine.notebook:extract_plain",
    "answers_items": "grader.engine.answers:untrusted_items",
}
USER_ERRORS = {
    "SubmissionError": "grader.engine.submission:SubmissionError",
    "NotebookError": "grader.engine.notebook:NotebookError",
    "AnswersError": "grader.engine.answers:AnswersError",
}
MEMORY_MB = 1536          # address space of the helper
TIMEOUT_S = 60.0          # wall clock of one call
CALLS_PER_HELPER = 500    # a fresh helper now and then: its CPU limit covers its whole life
PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent.parent)   # the folder holding grader/


class InputTooLarge(ValueError):
    """The input could not be read within the helper's time or memory; the message says which."""


def _resolve(spec: str):
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


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
        try:
            answer = {"ok": _resolve(TASKS[call["task"]])(**call["kwargs"])}
        except RecursionError:
            answer = {"user": "InputTooLarge", "message": "it is nested too deeply to be read"}
        except MemoryError:
            answer = {"user": "InputTooLarge", "message": f"reading it needs more than {MEMORY_MB} MB"}
        except Exception as err:  # noqa: BLE001 - sorted below: the student's input, or our bug
            name = type(err).__name__
            if name in USER_ERRORS and isinstance(err, _resolve(USER_ERRORS[name])):
                answer = {"user": name, "message": str(err)}
            else:
                answer = {"bug": traceback.format_exc()}
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


def _helper() -> _Helper:
    helper = getattr(_LOCAL, "helper", None)
    if helper is None or helper.proc.poll() is not None or helper.calls >= CALLS_PER_HELPER:
        if helper is not None:
            helper.close()
        helper = _LOCAL.helper = _Helper()
        with _ALL_LOCK:
            _ALL.append(helper)
    return helper


def shutdown() -> None:
    """Stop every helper (each grading thread has one)."""
    with _ALL_LOCK:
        helpers = list(_ALL)
        _ALL.clear()
    for h in helpers:
        h.close()


isolation.on_exit(shutdown)


def call(task: str, *, timeout_s: float = TIMEOUT_S, **kwargs):
    """Run ``TASKS[task](**kwargs)`` in this thread's helper; its return value.

    Raises:
        InputTooLarge: the input took more than the time or memory the helper has.
        SubmissionError, NotebookError, AnswersError: the task raised it (a message for the student).
        RuntimeError: the task failed in an unexpected way (a grader bug; the traceback is attached).
    """
    if task not in TASKS:
        raise KeyError(f"unknown bounded task {task!r}")
    answer = _helper().call(task, kwargs, timeout_s)
    if answer is None:
        raise InputTooLarge(f"it could not be read within {timeout_s:g} s and {MEMORY_MB} MB "
                            "(far too large, or built to explode)")
    if "ok" in answer:
        return answer["ok"]
    if "user" in answer:
        cls = InputTooLarge if answer["user"] == "InputTooLarge" else _resolve(USER_ERRORS[answer["user"]])
        raise cls(str(answer["message"]).encode("utf-8", "replace").decode("utf-8"))
    raise RuntimeError(f"bounded task {task} failed:\n{answer.get('bug', answer)}")

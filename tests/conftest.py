"""Shared fixtures: grading helpers that keep the test suite fast, and the isolation modes."""
import os
import sys
from pathlib import Path

import pytest


def _own_uid_range() -> None:
    """Under pytest-xdist, each worker grades with a share of the reserved uids of its own, so what one
    worker's checks find by uid (leftover processes, files) is never another worker's."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER", ""), os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    if not worker.startswith("gw") or not count.isdigit():
        return
    from grader.sandbox.isolation import DEFAULT_UID_RANGE

    first, last = (int(x) for x in os.environ.get("DGM_UID_RANGE", DEFAULT_UID_RANGE).split("-"))
    share = (last - first + 1) // int(count)
    start = first + int(worker[2:]) * share
    os.environ["DGM_UID_RANGE"] = f"{start}-{start + share - 1}"


_own_uid_range()

from grader.engine.assignment import load_assignment  # noqa: E402
from grader.engine.grade import grade  # noqa: E402
from grader.engine.paths import REPO_ROOT  # noqa: E402
from grader.engine.results import GradeResult  # noqa: E402
from grader.sandbox import forkserver  # noqa: E402 - after the uid range is set

# Fork the worker zygote before anything of an assignment is read (it refuses after): where there is
# no bubblewrap, worker servers are then forked from it, as `grader grade` and Gradescope's run do.
forkserver.start()

REFERENCE_GAN = (REPO_ROOT / "solutions" / "gan" / "codebase" / "gan.py").read_text()


@pytest.fixture(scope="session")
def gan_assignment():
    return load_assignment("gan")


def write_gan(folder: Path, source: str) -> Path:
    """A submission folder holding codebase/gan.py with ``source``."""
    (folder / "codebase").mkdir(parents=True, exist_ok=True)
    (folder / "codebase" / "gan.py").write_text(source)
    return folder


def shown(t) -> str:
    """What the student reads for a test: the message, then the likely mistake."""
    from grader.app.report import test_output

    return test_output(t)


def by_function(result: GradeResult) -> dict[str, dict[str, tuple[bool, str]]]:
    """function -> check name suffix ('d_loss value...' etc.) -> (passed, message)."""
    out: dict[str, dict[str, tuple[bool, str]]] = {}
    for t in result.tests:
        if t.manual or t.tags == ["answers"]:   # short answers are tested in test_answers.py
            continue
        fn, _, test = t.name.partition(": ")
        out.setdefault(t.tags[0], {})[test] = (t.passed, shown(t))
    return out


def reset_isolation() -> None:
    """Forget the isolation plan (and the servers built for it) after changing the environment."""
    from grader.sandbox import isolation
    from grader.sandbox import runner as sandbox

    sandbox.shutdown_pool()
    for cached in (isolation.plan, isolation.bwrap_path, isolation.interpreter):
        cached.cache_clear()


def _session_python() -> str | None:
    """A Python other users can run: this one if they can read it, else the grader's own readable
    copy of it (``isolation.readable_copy``, as a root grader makes for itself); None if neither."""
    from grader.sandbox import isolation

    py = isolation.interpreter(sys.executable)
    if isolation.readable(py):
        return sys.executable
    copy = isolation.readable_copy(py) if isolation.is_root() else None
    return copy.executable if copy else None


CONTAINER_HOWTO = ("container tests skipped: run `pytest --container tests/test_container.py` "
                   "(or DGM_CONTAINER_TEST=1; needs Docker and debootstrap)")


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: one worker per core, at most four (each holds torch and worker servers)."""
    return max(1, min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, 4))


def pytest_addoption(parser):
    parser.addoption("--container", action="store_true", default=False,
                     help="run the tests marked container: the Gradescope bundle in Docker (slow)")


def _containers_on(config) -> bool:
    return config.getoption("--container") or os.environ.get("DGM_CONTAINER_TEST") == "1"


def pytest_collection_modifyitems(config, items):
    """Tests marked ``heavy`` (tens of seconds each) go first, so parallel workers do not end on them;
    tests marked ``container`` run only when asked for: say how, once, when they are skipped."""
    items.sort(key=lambda item: "heavy" not in item.keywords)   # stable: the rest keep their order
    if _containers_on(config):
        return
    marked = [item for item in items if "container" in item.keywords]
    for item in marked:
        item.add_marker(pytest.mark.skip(reason=CONTAINER_HOWTO))
    config._dgm_containers_skipped = len(marked)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if getattr(config, "_dgm_containers_skipped", 0):
        terminalreporter.write_line(f"{CONTAINER_HOWTO} [{config._dgm_containers_skipped} tests]")


@pytest.fixture(scope="session")
def readable_python():
    """The path of a Python that a probe uid can read (see :func:`_session_python`)."""
    python = _session_python()
    if python is None:
        pytest.skip("no Python that other users can read (a virtual environment under a private folder?)")
    return python


@pytest.fixture
def without_bwrap(monkeypatch, readable_python):
    """Grade as on Gradescope: no bubblewrap, the grader root, a Python every user can read."""
    monkeypatch.setenv("DGM_NO_BWRAP", "1")
    reset_isolation()
    yield
    monkeypatch.undo()
    reset_isolation()


__all__ = ["REFERENCE_GAN", "write_gan", "by_function", "grade", "reset_isolation", "shown"]

"""Hostile or broken student code costs only its own part; the worker cannot see the repository."""
import os
import time
from dataclasses import replace

import pytest

from conftest import REFERENCE_GAN, by_function, write_gan
from grader.engine.grade import grade
from grader.engine.paths import REPO_ROOT
from grader.sandbox.runner import Limits, bwrap_path

FAST = Limits(timeout_s=3.0)


def replace_function(src: str, name: str, new: str) -> str:
    start = src.index(f"\ndef {name}(")
    end = src.find("\ndef ", start + 1)
    return src[:start] + "\n" + new.strip("\n") + "\n\n" + (src[end:] if end != -1 else "")


def scores(result):
    return {fn: sum(1 for ok, _ in tests.values() if ok) for fn, tests in by_function(result).items()}


def test_sys_exit_at_import_fails_every_part_with_a_message(gan_assignment, tmp_path):
    sub = write_gan(tmp_path / "s", "import sys\nsys.exit(0)\n" + REFERENCE_GAN)
    r = grade(gan_assignment, sub, limits=FAST)
    assert r.score == 0
    assert all("sys.exit(0)" in t.output for t in r.tests if not t.manual and t.tags != ["answers"])


@pytest.mark.parametrize("body,says", [
    ("    import os\n    os._exit(3)\n", "exited with status 3"),
    ("    while True:\n        pass\n", "timed out"),
    ("    raise SystemExit('bye')\n", "sys.exit('bye')"),
    ("    return 1.0, 2.0\n", "must be a torch.Tensor"),
    ("    import torch\n    x = torch.empty(10**12)\n", "memory"),
])
def test_one_bad_function_costs_only_its_part(gan_assignment, tmp_path, body, says):
    src = replace_function(REFERENCE_GAN, "loss_minimax",
                           "def loss_minimax(g, d, x_real, *, device):\n" + body)
    r = grade(gan_assignment, write_gan(tmp_path / "s", src), limits=FAST)
    assert r.score == 35  # everything but loss_minimax's 10 points
    minimax = [t for t in r.tests if t.tags == ["loss_minimax"]]
    assert all(says in t.output for t in minimax), minimax[0].output


@pytest.mark.skipif(bwrap_path() is None, reason="bubblewrap not available")
def test_worker_cannot_read_the_solutions_or_reach_the_network(gan_assignment, tmp_path):
    target = REPO_ROOT / "solutions" / "gan" / "codebase" / "gan.py"
    probe = f'''
def loss_minimax(g, d, x_real, *, device):
    import socket
    for path in ({str(target)!r}, "/proc/1/root{target}"):
        try:
            open(path).read()
            raise RuntimeError("READ " + path)
        except (FileNotFoundError, PermissionError):
            pass
    try:
        socket.create_connection(("127.0.0.1", 22), timeout=1)
        raise RuntimeError("NETWORK")
    except OSError:
        pass
    z = torch.randn(x_real.shape[0], g.dim_z, device=device)
    d_real, d_fake = d(x_real), d(g(z))
    return -F.logsigmoid(d_real).mean() - F.logsigmoid(-d_fake).mean(), F.logsigmoid(-d_fake).mean()
'''
    r = grade(gan_assignment, write_gan(tmp_path / "s", replace_function(REFERENCE_GAN, "loss_minimax", probe)))
    minimax = [t for t in r.tests if t.tags == ["loss_minimax"]]
    assert all(t.passed for t in minimax), [t.output for t in minimax]


def _sleepers(token: str) -> list[int]:
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if token.encode() in f.read():
                    pids.append(int(pid))
        except OSError:
            pass
    return pids


@pytest.mark.parametrize("use_bwrap", [True, False], ids=["bwrap", "no-bwrap"])
def test_forged_results_and_detached_children_do_not_survive(gan_assignment, tmp_path, monkeypatch, use_bwrap,
                                                             request):
    from grader.sandbox import runner as sandbox

    if use_bwrap and sandbox.bwrap_path() is None:
        pytest.skip("bubblewrap not available")
    if not use_bwrap:
        request.getfixturevalue("without_bwrap")
    token = f"{time.time_ns() % 10**6}.25"   # an unusual sleep length names our sleeper
    out = tmp_path / "out"
    forge = f'''
def loss_minimax(g, d, x_real, *, device):
    import os, subprocess
    for p in ({str(out / "s" / "results.json")!r}, "results.json", "/tmp/results.json"):
        try:
            os.makedirs(os.path.dirname(p) or ".", exist_ok=True)
            open(p, "w").write('{{"score": 1000}}')
        except OSError:
            pass
    subprocess.Popen(["sleep", "{token}"], start_new_session=True)
    raise RuntimeError("gave up")
'''
    from grader.app.cli import run_grade

    sub = write_gan(tmp_path / "s", replace_function(REFERENCE_GAN, "loss_minimax", forge))
    [r] = run_grade(assignment=gan_assignment, submissions=[sub], out=out, quiet=True)
    assert r.score == 35
    import json
    assert json.loads((out / "s" / "results.json").read_text())["score"] == 35
    assert "gave up" in [t for t in r.tests if t.tags == ["loss_minimax"]][0].output
    assert _sleepers(token) == [], "a detached child outlived the worker"


def test_grading_twice_gives_the_same_results(gan_assignment, tmp_path):
    from grader.app.report import results_json

    sub = write_gan(tmp_path / "s", REFERENCE_GAN)
    a, b = (results_json(grade(gan_assignment, sub)) for _ in range(2))
    for r in (a, b):
        r.pop("execution_time")
    assert a == b
    assert os.listdir(tmp_path / "s") == ["codebase"]  # the submission folder was not touched


def test_a_server_that_dies_under_a_probe_gets_one_more_try(gan_assignment, tmp_path, monkeypatch):
    """The server may die of something else (the OOM killer, another grading thread's probe without
    bubblewrap): the probe it was running is tried once more on a fresh server before it is blamed."""
    from grader.sandbox import runner as sandbox

    real_run = sandbox.WorkerServer.run
    calls = []

    def dies_once(self, files_dir, module, probes, limits, outcomes, display, uid=None):
        calls.append([p["id"] for p in probes])
        if len(calls) == 1:
            self.proc.kill()
            self.proc.wait()
            return [p["id"] for p in probes], "crashed"
        return real_run(self, files_dir, module, probes, limits, outcomes, display, uid)

    monkeypatch.setattr(sandbox.WorkerServer, "run", dies_once)
    r = grade(gan_assignment, write_gan(tmp_path / "s", REFERENCE_GAN))
    assert r.score == 45 and len(calls) == 2 and calls[0] == calls[1]

    def always_dies(self, files_dir, module, probes, limits, outcomes, display, uid=None):
        calls.append([p["id"] for p in probes])
        self.proc.kill()
        self.proc.wait()
        return [p["id"] for p in probes], "crashed"

    monkeypatch.setattr(sandbox.WorkerServer, "run", always_dies)
    one_part = replace(gan_assignment, parts=gan_assignment.parts[:1])   # each try is a fresh server
    r = grade(one_part, write_gan(tmp_path / "t", REFERENCE_GAN))
    assert r.score == 0 and r.status == "crashed" and len(calls) == 4
    assert all("killed by signal SIGKILL" in t.output for t in r.tests if not t.manual and t.tags != ["answers"])


def test_a_sandbox_that_cannot_start_fails_every_part_with_its_error(gan_assignment, tmp_path, monkeypatch):
    from grader.sandbox import runner as sandbox

    sandbox.shutdown_pool()
    monkeypatch.setattr(sandbox, "_bootstrap", lambda *a: "import sys\nsys.stderr.write('no torch here')\nsys.exit(1)\n")
    monkeypatch.setattr(sandbox, "_zygote_for", lambda plan: None)   # without bubblewrap: exec'd, not forked
    try:
        r = grade(gan_assignment, write_gan(tmp_path / "s", REFERENCE_GAN))
    finally:
        sandbox.shutdown_pool()
    graded = [t for t in r.tests if not t.manual and t.tags != ["answers"]]
    assert r.status == "crashed" and r.score == 0
    assert all("the grader's sandbox failed to start" in t.output and "no torch here" in t.output for t in graded)


def test_a_chatty_server_never_stalls_on_a_full_stderr_pipe(gan_assignment, tmp_path, monkeypatch):
    from grader.sandbox import runner as sandbox

    real = sandbox._bootstrap
    sandbox.shutdown_pool()
    monkeypatch.setattr(sandbox, "_bootstrap", lambda *a: "import sys\nsys.stderr.write('x' * 300_000)\n" + real(*a))
    try:
        r = grade(gan_assignment, write_gan(tmp_path / "s", REFERENCE_GAN), limits=Limits(startup_s=30))
    finally:
        sandbox.shutdown_pool()
    assert r.score == 45


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="Linux only")
def test_the_zygote_forks_servers_and_reports_how_they_ended(tmp_path):
    """The zygote (forked by conftest before anything secret was read) starts a worker server that
    answers like an exec'd one, reports its end, and kills what a dead server leaves behind."""
    import json
    import signal
    import sys

    from grader.sandbox import forkserver
    from grader.sandbox.runner import PACKAGE

    zygote = forkserver.get()
    assert zygote is not None, "conftest forks the zygote first thing"
    config = json.dumps({"fork": True, "ipc_namespace": False, "submission_root": str(tmp_path),
                         "scratch_root": str(tmp_path), "file_roots": []})
    server = zygote.spawn(config, {"PATH": "/usr/bin:/bin", "DGM_WORKER": "test"}, str(tmp_path),
                          [str(PACKAGE.parent), *[p for p in sys.path if p]])
    head = server.stdout.read(8)
    assert head[:4] == b"DGM1", server.stderr.read()
    header = json.loads(server.stdout.read(int.from_bytes(head[4:8], "big")))
    assert header == {"ready": True} and server.poll() is None
    with open(f"/proc/{server.pid}/status") as f:
        ppid = int(next(line.split()[1] for line in f if line.startswith("PPid:")))
    assert ppid == zygote.pid
    os.killpg(server.pid, signal.SIGKILL)
    assert server.wait(timeout=10) == -signal.SIGKILL
    server.stdin.close()
    from grader.engine import reference

    reference.load_path(REPO_ROOT / "solutions" / "gan" / "codebase" / "gan.py")
    assert forkserver.secrets_loaded(), "a process that loaded a reference must fork no zygote"


def _starve_every_cpu(n_per_cpu: int = 3) -> list[int]:
    """Busy processes, each in a session of its own (so autogroups do not lump them together)."""
    pids = []
    for _ in range(n_per_cpu * (os.cpu_count() or 1)):
        pid = os.fork()
        if pid == 0:
            os.setsid()
            while True:
                pass
        pids.append(pid)
    return pids


@pytest.mark.heavy
def test_a_probe_starved_of_cpu_is_charged_its_own_time_and_a_sleeper_still_times_out(gan_assignment, tmp_path):
    """A probe's time is wall clock less what it waited for a CPU: a function that needs 1 s of CPU
    passes its 2.5 s timeout while other processes keep every CPU busy (its wall time is several
    times that), and a function that sleeps is still stopped after 2.5 s, not at the backstop."""
    import signal

    busy = ("def loss_minimax(g, d, x_real, *, device):\n"
            "    import time\n"
            "    while time.process_time() < 1.0:   # the probe process's first second of CPU\n"
            "        pass\n")
    src = REFERENCE_GAN.replace("def loss_minimax(g, d, x_real, *, device):\n", busy, 1)
    src = replace_function(src, "loss_nonsaturating", "def loss_nonsaturating(g, d, x_real, *, device):\n"
                                                      "    import time\n    time.sleep(120)\n")
    two = replace(gan_assignment, parts=tuple(p for p in gan_assignment.parts
                                              if p.function in ("loss_minimax", "loss_nonsaturating")))
    limits = Limits(timeout_s=2.5, backstop=20.0)
    assert grade(two, write_gan(tmp_path / "warm", REFERENCE_GAN), limits=limits).score > 0   # a warm server
    hogs = _starve_every_cpu()
    try:
        start = time.monotonic()
        r = grade(two, write_gan(tmp_path / "s", src), limits=limits)
        took = time.monotonic() - start
    finally:
        for pid in hogs:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    minimax = [t for t in r.tests if t.tags == ["loss_minimax"]]
    assert minimax and all(t.passed for t in minimax), [t.output for t in minimax if not t.passed]
    sleeper = [t for t in r.tests if t.tags == ["loss_nonsaturating"]]
    assert sleeper and all("timed out" in t.output for t in sleeper), sleeper[0].output
    assert took < 100, took   # the sleeper was stopped at its own 2.5 s, not at 20 x 2.5 s


def test_a_module_whose_import_times_out_is_not_imported_again_for_every_function(gan_assignment, tmp_path):
    """Code at the top level runs on every function's import: once it has timed out there, the other
    functions are not run (it would cost a timeout each), and the report says the import hung. The
    module here would import at once the second time: the functions were not tried again."""
    head = ("import os, tempfile, time\n"
            "_flag = os.path.join(tempfile.gettempdir(), 'imported-once-%d' % os.getuid())\n"
            "if not os.path.exists(_flag):\n"
            "    open(_flag, 'w').close()\n"
            "    time.sleep(60)\n")
    r = grade(gan_assignment, write_gan(tmp_path / "s", head + REFERENCE_GAN), limits=Limits(timeout_s=2.0))
    graded = [t for t in r.tests if not t.manual and t.tags != ["answers"]]
    assert r.score == 0 and r.status == "timeout"
    assert all("importing codebase/gan.py timed out after 2" in t.output for t in graded), graded[0].output
    assert len(r.stops) == 1 and "importing" in r.stops[0]


def test_a_probe_cannot_make_itself_look_starved_to_get_more_time(gan_assignment, tmp_path):
    """Waiting for a CPU is excused only when the probe's own processes did not use it: a main thread
    that idles at the lowest priority beside its own busy helper (so that it is always 'waiting')
    still times out once the helper has used its timeout's worth of CPU."""
    head = "def loss_minimax(g, d, x_real, *, device):\n"
    trick = (head + "    import os, time\n"
             "    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
             "    helper = os.fork()\n"
             "    if helper == 0:\n"
             "        while time.process_time() < 5.0:\n"
             "            pass\n"
             "        os._exit(0)\n"
             "    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\n"
             "    while os.waitpid(helper, os.WNOHANG) == (0, 0):\n"
             "        pass\n")
    two = replace(gan_assignment, parts=tuple(p for p in gan_assignment.parts if p.function == "loss_minimax"))
    r = grade(two, write_gan(tmp_path / "s", REFERENCE_GAN.replace(head, trick, 1)),
              limits=Limits(timeout_s=2.0, backstop=20.0))
    minimax = [t for t in r.tests if t.tags == ["loss_minimax"]]
    assert minimax and all("timed out" in t.output for t in minimax), minimax[0].output

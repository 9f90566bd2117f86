"""Hostile submissions: whatever they try, grading finishes with the grader's own results.

For every attack we assert: the grader finishes; results.json is the grader's;
the score is not above what the honest parts earn; nothing outside the
worker's scratch folder changed (a canary folder and the solutions); no
worker process is left.
"""
import hashlib
import io
import json
import os
import sys
import tempfile
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import REFERENCE_GAN, write_gan
from grader.app.cli import run_grade
from grader.engine.grade import grade
from grader.engine.paths import REPO_ROOT
from grader.sandbox.runner import bwrap_path

SOLUTION = REPO_ROOT / "solutions" / "gan" / "codebase" / "gan.py"
HONEST_WITHOUT_MINIMAX = 35   # the three untouched reference functions
WRONG_MINIMAX = '''
def loss_minimax(g, d, x_real, *, device):
    z = torch.randn(x_real.shape[0], g.dim_z, device=device)
    d_fake = d(g(z))
    return d(x_real).mean() * 0 + 1.0, d_fake.mean()
'''


def replace_function(src: str, name: str, new: str) -> str:
    start = src.index(f"\ndef {name}(")
    end = src.find("\ndef ", start + 1)
    return src[:start] + "\n" + new.strip("\n") + "\n\n" + (src[end:] if end != -1 else "")


def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(p) for p in f.read().split()]
    except OSError:
        pass
    return out


def _idle_servers() -> set[int]:
    """The idle worker servers kept for the next submission: each one's bwrap wrappers and its
    Python process, but none of that process's children (a probe process left behind)."""
    from grader.sandbox.runner import idle_server_pids

    allowed: set[int] = set()
    for pid in idle_server_pids():
        frontier = [pid]
        while frontier:
            p = frontier.pop()
            allowed.add(p)
            try:
                exe = os.path.basename(os.readlink(f"/proc/{p}/exe"))
            except OSError:
                continue
            if exe == "bwrap":
                frontier += _children(p)
            else:   # the server's own helper (grader/sandbox/worker/contain.py), root and named
                allowed |= {c for c in _children(p) if _comm(c) == "dgm-as-uid" and os.stat(f"/proc/{c}").st_uid == 0}
    return allowed


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def _settled(find, wait_s: float = 5.0) -> list[int]:
    """``find()`` once it is empty, or what it still finds after ``wait_s``: killed processes take a
    moment to go (a sandbox's PID namespace is torn down after its parent is reaped; freeing
    hundreds of MB takes time)."""
    import time

    deadline = time.monotonic() + wait_s
    while (left := find()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def worker_processes() -> list[int]:
    """Processes started by this test process's workers (marked DGM_WORKER=<our pid>), except
    the idle worker servers themselves, once killed ones had a moment to go."""
    return _settled(_worker_processes_now)


def _worker_processes_now() -> list[int]:
    from grader.sandbox.runner import worker_marker

    marker = f"DGM_WORKER={worker_marker()}".encode()
    idle = _idle_servers()
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if marker in f.read().split(b"\0") and int(pid) not in idle:
                    pids.append(int(pid))
        except OSError:
            pass
    return pids


def tree_digest(folder) -> str:
    h = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(folder)):
        dirs.sort()
        for f in sorted(files):
            p = os.path.join(root, f)
            h.update(p.encode() + open(p, "rb").read())
    return h.hexdigest()


@pytest.fixture
def attack(gan_assignment, tmp_path):
    """Grade ``source`` and check every containment property; returns results.json."""
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "keep.txt").write_text("do not touch")

    def run(source: str, max_honest: float, timeout_s: float = 4.0, upload=None):
        sub = upload or write_gan(tmp_path / "sub", source.replace("CANARY", str(canary)))
        out = tmp_path / "out"
        before = (tree_digest(canary), hashlib.sha256(SOLUTION.read_bytes()).hexdigest())
        from dataclasses import replace

        assignment = replace(gan_assignment, probe_timeout_s=timeout_s)
        [result] = run_grade(assignment=assignment, submissions=[sub], out=out, quiet=True)
        written = json.loads((out / result.submission / "results.json").read_text())
        assert written["score"] == result.score <= max_honest
        assert len([t for t in written["tests"] if "manual" not in t["tags"]]) == 40  # 36 code, 4 answers
        assert all(t["tags"] for t in written["tests"])
        rows = (out / "grades.csv").read_text().splitlines()
        assert len(rows) == 2 and rows[1].split(",")[-3] == f"{result.score:g}"
        assert (tree_digest(canary), hashlib.sha256(SOLUTION.read_bytes()).hexdigest()) == before
        assert worker_processes() == [], "a worker process outlived grading"
        return written

    return run


def minimax_tests(results):
    return [t for t in results["tests"] if t["tags"] == ["loss_minimax"]]


# ------------------------------------------------------------------ crashes and resource abuse

@pytest.mark.parametrize("prefix,says", [
    ("import sys\nsys.exit(0)\n", "sys.exit(0)"),
    ("import time\ntime.sleep(60)\n", "timed out"),
    ("raise ImportError('no luck')\n", "ImportError: no luck"),
])
def test_hostile_import(attack, prefix, says):
    r = attack(prefix + REFERENCE_GAN, 0, timeout_s=2.5)   # each graded function imports the module anew
    assert all(says_so(r, t, says) for t in r["tests"] if t["tags"][0] not in ("manual", "answers"))


def says_so(results: dict, test: dict, text: str) -> bool:
    """The test's own output says ``text``, or it points to a problem stated once at the top that does."""
    return text in test["output"] or ("at the top of this report" in test["output"] and text in results["output"])


@pytest.mark.parametrize("body,says", [
    ("    import os\n    os._exit(0)\n", "without returning"),
    ("    while True:\n        pass\n", "timed out"),
    ("    x = bytearray(50 * 2**30)\n", "memory"),
    ("    import sys\n    while True:\n        sys.stdout.write('spam' * 4096)\n", "more than 16 MB"),
    ("    import os, time\n    for _ in range(5000):\n        if os.fork() == 0:\n            time.sleep(60)\n            os._exit(0)\n", "Error|timed out"),  # process limit, or (as root without bwrap) the timeout
    ("    return torch.tensor(float('nan')), torch.tensor(float('nan'))\n", "not a finite number"),
])
def test_hostile_call_costs_only_its_part(attack, body, says):
    r = attack(replace_function(REFERENCE_GAN, "loss_minimax", "def loss_minimax(g, d, x_real, *, device):\n" + body),
               HONEST_WITHOUT_MINIMAX)
    assert r["score"] == HONEST_WITHOUT_MINIMAX
    assert any(any(says_so(r, t, s) for s in says.split("|")) for t in minimax_tests(r)), r["output"][-1500:]


def test_detached_sleepers_are_killed(attack):
    body = '''
def loss_minimax(g, d, x_real, *, device):
    import os, subprocess
    for _ in range(3):
        subprocess.Popen(["sleep", "600"], start_new_session=True)
    if os.fork() == 0:
        os.setsid()
        import time
        time.sleep(600)
'''
    attack(replace_function(REFERENCE_GAN, "loss_minimax", body), HONEST_WITHOUT_MINIMAX)


# ------------------------------------------------------------------ lying about results

FORGE = '''
def loss_minimax(g, d, x_real, *, device):
    import glob, os
    for pattern in ("/tmp/*/out", "/tmp/pytest-of-*/pytest-*/*/out", "CANARY/../out"):
        for folder in glob.glob(pattern):
            for name in ("results.json", "sub/results.json", "grades.csv"):
                try:
                    with open(os.path.join(folder, name), "w") as f:
                        f.write('{"score": 1000, "tests": []}' if name.endswith("json") else "sub,1000")
                except OSError:
                    pass
''' + WRONG_MINIMAX.split(":", 1)[1].split("\n", 1)[1]


def test_forged_results_never_count(attack):
    r = attack(replace_function(REFERENCE_GAN, "loss_minimax", FORGE), HONEST_WITHOUT_MINIMAX)
    assert r["score"] == HONEST_WITHOUT_MINIMAX


PATCH_COMPARISONS = '''
import math, numpy, torch
numpy.allclose = lambda *a, **k: True
numpy.isclose = lambda *a, **k: True
numpy.array_equal = lambda *a, **k: True
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
math.isclose = lambda *a, **k: True
try:
    import pytest
    pytest.approx = lambda *a, **k: a[0]
except ImportError:
    pass
'''


def test_monkeypatched_comparisons_change_nothing(attack):
    src = replace_function(REFERENCE_GAN, "loss_minimax", WRONG_MINIMAX)
    r = attack(PATCH_COMPARISONS + src, HONEST_WITHOUT_MINIMAX)
    assert r["score"] == HONEST_WITHOUT_MINIMAX


LIARS = {
    "float_subclass": '''
class Liar(float):
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    __hash__ = float.__hash__
def loss_minimax(g, d, x_real, *, device):
    return Liar(0.0), Liar(0.0)
''',
    "tensor_subclass_torch_function": '''
class Liar(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        return torch.tensor(0.0)
    def __eq__(self, other): return True
def loss_minimax(g, d, x_real, *, device):
    return torch.tensor(0.5).as_subclass(Liar), torch.tensor(0.5).as_subclass(Liar)
''',
    "patched_autograd": '''
def loss_minimax(g, d, x_real, *, device):
    real_grad = torch.autograd.grad
    torch.autograd.grad = lambda outputs, inputs, **k: [torch.zeros_like(p) for p in inputs]
    z = torch.randn(x_real.shape[0], g.dim_z, device=device)
    return d(x_real).mean(), d(g(z)).mean()
''',
}


@pytest.mark.parametrize("name", sorted(LIARS))
def test_lying_objects_score_nothing(attack, name):
    r = attack(replace_function(REFERENCE_GAN, "loss_minimax", LIARS[name]), HONEST_WITHOUT_MINIMAX)
    assert r["score"] == HONEST_WITHOUT_MINIMAX
    assert not any(t["status"] == "passed" and t["max_score"] > 0 for t in minimax_tests(r))


# ------------------------------------------------------------------ escaping the sandbox

ESCAPE = '''
def loss_minimax(g, d, x_real, *, device):
    import glob, os, shutil, socket
    seen = []
    for path in (SOLUTION, "/proc/1/root" + SOLUTION, "/proc/self/root" + SOLUTION):
        try:
            seen.append(open(path).read()[:10])
        except OSError:
            pass
    for pattern in ("/work/*/solutions", "/root/**/solutions", "/tmp/*/solutions", "/home/*"):
        seen += glob.glob(pattern, recursive=True)
    for pid in os.listdir("/proc"):
        try:
            seen.append(os.readlink(f"/proc/{pid}/cwd"))
        except OSError:
            pass
    for victim in ("CANARY/keep.txt", SOLUTION):
        try:
            os.remove(victim)
        except OSError:
            pass
    shutil.rmtree("CANARY", ignore_errors=True)
    try:
        socket.create_connection(("1.1.1.1", 53), timeout=2)
        seen.append("network")
    except OSError:
        pass
    if any("solutions" in s or s == "network" or "BEGIN" in s for s in seen):
        raise RuntimeError("ESCAPED: " + repr(seen)[:500])
''' + WRONG_MINIMAX.split(":", 1)[1].split("\n", 1)[1]


@pytest.mark.skipif(bwrap_path() is None, reason="bubblewrap not available")
def test_cannot_read_solutions_delete_files_or_reach_the_network(attack):
    src = replace_function(REFERENCE_GAN, "loss_minimax", ESCAPE.replace("SOLUTION", repr(str(SOLUTION))))
    r = attack(src, HONEST_WITHOUT_MINIMAX)
    assert not any("ESCAPED" in t["output"] for t in minimax_tests(r)), minimax_tests(r)[0]["output"]
    assert any("d_loss" in t["output"] for t in minimax_tests(r))  # it got past the escape attempts


def test_zip_slip_upload_is_refused_and_writes_nothing(attack, tmp_path):
    z = tmp_path / "upload.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("codebase/gan.py", REFERENCE_GAN)
        zf.writestr("../../escaped.py", "x = 1")
    r = attack("", 0, upload=z)
    assert "unsafe path" in r["output"]
    assert not list(tmp_path.parent.glob("escaped.py")) and not (tmp_path / "escaped.py").exists()


# ------------------------------------------------------------------ what the parent accepts from a worker

def _forge(header: object, data: bytes = b"", magic: bytes = b"DGA1") -> bytes:
    """A worker's arrays payload as a hostile probe could write it: any header, any data."""
    text = json.dumps(header).encode()
    return magic + len(text).to_bytes(4, "big") + text + data


def _raw(text: bytes, data: bytes = b"") -> bytes:
    return b"DGA1" + len(text).to_bytes(4, "big") + text + data


def test_parent_refuses_objects_malformed_arrays_and_bombs():
    import queue

    import numpy as np

    from grader.sandbox.probing import decode_arrays, encode_arrays
    from grader.sandbox.runner import _outcome, _read_frames

    ones = np.ones(3).tobytes()
    npz = io.BytesIO()
    np.savez(npz, x=np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    refused = {
        "an npz with a pickled object": npz.getvalue(),
        "another magic": _forge([["x", [3]]], ones, magic=b"DGA2"),
        "a header that is not a list": _forge({"x": [3]}, ones),
        "a dtype beside the shape": _forge([["x", [3], "object"]], ones),
        "a negative size": _forge([["x", [-3]]], ones),
        "a float size": _forge([["x", [3.0]]], ones),
        "a bool size": _forge([["x", [True, 3]]], ones),
        "an infinite size": _raw(b'[["x", [1e999]]]', ones),
        "seven dimensions": _forge([["x", [1] * 7]], np.ones(1).tobytes()),
        "an empty array of absurd width": _forge([["x", [0, 10**30]]]),
        "a name twice": _forge([["x", [1]], ["x", [1]]], np.ones(2).tobytes()),
        "too little data": _forge([["x", [4]]], ones),
        "too much data": _forge([["x", [2]]], ones),
        "a header longer than the payload": b"DGA1" + (1 << 19).to_bytes(4, "big") + b"[]",
        "a huge header": b"DGA1" + (1 << 30).to_bytes(4, "big") + b"[]",
        "broken JSON": _raw(b"[[x"),
        "deep JSON": _raw(b"[" * 100_000 + b"]" * 100_000),
    }
    for what, payload in refused.items():
        with pytest.raises(ValueError):
            decode_arrays(payload)
            pytest.fail(f"{what} was accepted")
    with pytest.raises(ValueError, match="too large"):   # claimed sizes are checked before any data is read
        decode_arrays(_forge([["x", [10**6, 10**6, 10**6]]]), max_elements=1_000_000)
    with pytest.raises(ValueError, match="too large"):
        decode_arrays(encode_arrays({"x": np.zeros(600_000), "y": np.zeros(600_000)}), max_elements=1_000_000)
    got = decode_arrays(encode_arrays({"x": np.ones(3), "s": 2.0, "m": np.arange(6.0).reshape(2, 3).T}))
    assert got["x"].dtype == np.float64 and got["s"].shape == () and got["m"].tolist() == [[0, 3], [1, 4], [2, 5]]
    bad = _outcome({"id": "p", "status": "ok"}, b"PK not our format")
    assert bad.status == "crashed" and "unreadable" in bad.message
    assert _outcome({"id": "p", "status": "passed-trust-me"}, b"") is None
    assert _outcome(["not", "a", "dict"], b"") is None

    def frames(stream: bytes, cap: int = 1000) -> list:
        q: queue.Queue = queue.Queue()
        _read_frames(io.BytesIO(stream), cap, q)
        return [q.get() for _ in range(q.qsize())]

    good = b"DGM1" + (2).to_bytes(4, "big") + b"{}" + (3).to_bytes(8, "big") + b"abc"
    assert frames(good) == [({}, b"abc"), None]
    assert frames(good + b"EVIL" + b"\0" * 20) == [({}, b"abc"), None]            # garbage ends the stream
    assert frames(b"DGM1" + (1 << 30).to_bytes(4, "big") + b"{") == [None]        # a huge header is refused
    assert frames(good.replace((3).to_bytes(8, "big"), (10**6).to_bytes(8, "big"))) == [None]  # over the cap
    assert frames(good[:-1]) == [None]                                            # a truncated payload


def test_malformed_probe_output_fails_the_part_without_a_grader_error(gan_assignment):
    """What the worker returns is checked against the schema the probe declares."""
    import numpy as np

    from grader.sandbox.probing import validate

    outputs = gan_assignment.probes["gan.loss"].outputs
    n_d, n_g = (outputs[k].size({"seed": 236})[1] for k in ("d_grad", "g_grad"))
    good = {"d_loss": np.ones(1), "d_loss_shape": np.zeros(0), "d_grad": np.zeros(n_d), "d_grad_ok": np.ones(1),
            "g_loss": np.ones(1), "g_loss_shape": np.zeros(0), "g_grad": np.zeros(0), "g_grad_ok": np.zeros(1),
            "d_extreme": np.ones(1), "g_extreme": np.zeros(1)}
    args = {"function": "loss_minimax", "seed": 236}
    assert validate(outputs, good, args) is None
    for key, value in [("d_loss_shape", np.array(3.0)), ("d_loss_shape", np.array([-1.0])),
                       ("d_loss_shape", np.array([np.inf])), ("g_grad", np.zeros(7)), ("g_grad_ok", np.array([0.5])),
                       ("d_in0_0", np.zeros((2,) * 6)), ("surprise", np.zeros(1))]:
        assert validate(outputs, {**good, key: value}, args), key
    assert validate(outputs, {k: v for k, v in good.items() if k != "g_loss"}, args)
    assert validate(outputs, {k: v for k, v in good.items() if not k.startswith("g_")},
                    {**args, "returns": "d"}) is None       # a function that returns d_loss alone
    assert n_g > 0


@pytest.mark.heavy
def test_fallback_mode_without_bwrap_or_fork_still_contains_everything(attack, monkeypatch, tmp_path):
    """macOS/Windows-like mode: functions run one after another, the worker restarts after each crash."""
    from conftest import reset_isolation

    monkeypatch.setenv("DGM_NO_BWRAP", "1")
    monkeypatch.setenv("DGM_NO_FORK", "1")
    reset_isolation()
    src = REFERENCE_GAN
    src = replace_function(src, "loss_nonsaturating",
                           "def loss_nonsaturating(g, d, x_real, *, device):\n    import os\n    os._exit(7)\n")
    src = replace_function(src, "loss_wasserstein_gp",
                           "def loss_wasserstein_gp(g, d, x_real, *, device):\n    while True:\n        pass\n")
    late = "sleep 1.5; echo forged-score-1000 > CANARY/../out/sub/results.json"
    src = replace_function(src, "loss_minimax", FORGE.replace(
        "    return", f"    import subprocess\n    subprocess.Popen(['sh', '-c', {late!r}], start_new_session=True)\n    return", 1))
    try:
        r = attack(src, 10)   # only the conditional loss is honest
    finally:
        monkeypatch.undo()
        reset_isolation()
    assert r["score"] == 10
    tests = {t["tags"][0]: t for t in r["tests"] if t["max_score"] > 0}
    assert says_so(r, tests["loss_nonsaturating"], "status 7")
    assert says_so(r, tests["loss_wasserstein_gp"], "timed out")
    assert "graded functions run one after another" in r["output"]
    assert "network is NOT closed" in r["output"] or "NO isolation barrier" in r["output"]
    import time

    time.sleep(2)  # past the moment the detached forger would have written
    assert json.loads((tmp_path / "out" / "sub" / "results.json").read_text())["score"] == 10


# ------------------------------------------------------------------ where the grader really runs: no bubblewrap
#
# Gradescope runs the autograder as root in a Docker container, where bubblewrap cannot create
# namespaces. The barrier is then the uid: each submission runs as a uid of its own that can read
# nothing of the grader's, and everything that uid owns is destroyed after it.

def reserved_uid_processes() -> list[int]:
    """Processes, anywhere on the machine, whose uid lies in the grader's reserved range, once killed
    ones had a moment to go; those of containers (another PID namespace: the container test grading
    in Docker meanwhile) are theirs."""
    return _settled(_reserved_uid_processes_now)


def _reserved_uid_processes_now() -> list[int]:
    from grader.sandbox import isolation

    uids = isolation.uid_range()
    ours = os.readlink("/proc/self/ns/pid")
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}").st_uid in uids and os.readlink(f"/proc/{pid}/ns/pid") == ours:
                out.append(int(pid))
        except OSError:
            pass
    return out


LINGER = '''
import os, signal, time


def _linger(marker):
    """A tree that outlives its probe: setsid, deaf to signals, re-forking at its bottom forever."""
    if os.fork() == 0:
        os.setsid()
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        while True:
            if os.fork() != 0:
                os._exit(0)          # the parent leaves; its child goes on with a new pid
            time.sleep(0.05)
            try:
                with open(marker, "w") as f:
                    f.write('{"score": 1000, "tests": []}')
            except OSError:
                pass
'''

DELEGATE = LINGER + '''
ROOT = ROOT_PATH
_linger(os.path.join(ROOT, "results", "results.json"))


def _reference(name):
    ns = {}
    with open(os.path.join(ROOT, "source", "solutions", "gan", "codebase", "gan.py")) as f:
        exec(compile(f.read(), "reference", "exec"), ns)
    return ns[name]


def loss_minimax(g, d, x_real, *, device):
    return _reference("loss_minimax")(g, d, x_real, device=device)


def loss_nonsaturating(g, d, x_real, *, device):
    return _reference("loss_nonsaturating")(g, d, x_real, device=device)


def conditional_loss_nonsaturating(g, d, x_real, y_real, *, device):
    return _reference("conditional_loss_nonsaturating")(g, d, x_real, y_real, device=device)


def loss_wasserstein_gp(g, d, x_real, *, device):
    return _reference("loss_wasserstein_gp")(g, d, x_real, device=device)
'''


def _gradescope_root(bundle) -> Path:
    """A fake /autograder in a world-readable folder (as Gradescope's is), the bundle unpacked in it."""
    import stat
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="fake-autograder-", dir="/tmp"))
    os.chmod(root, 0o755)
    with zipfile.ZipFile(bundle) as zf:
        zf.extractall(root / "source")
        for info in zf.infolist():
            if (info.external_attr >> 16) & stat.S_IXUSR:
                os.chmod(root / "source" / info.filename, 0o755)
    for d in (root / "submission", root / "results"):
        d.mkdir()
    for dirpath, dirnames, _ in os.walk(root):   # as a zip unpacks on Gradescope: readable by all
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), 0o755)
    return root


def _run_autograder(root, python, tmpdir, **extra_env):
    import subprocess
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "AUTOGRADER_PYTHON": str(python), "DGM_NO_BWRAP": "1",
           "TMPDIR": str(tmpdir), **extra_env}
    env.pop("PYTHONPATH", None)
    env.pop("DGM_WORKER_PYTHON", None)
    proc = subprocess.run([str(root / "source" / "run_autograder")], env=env, capture_output=True, text=True,
                          timeout=600, cwd=root)
    assert proc.returncode == 0, proc.stderr
    return json.loads((root / "results" / "results.json").read_text())


@pytest.fixture(scope="module")
def gan_bundle(tmp_path_factory):
    from grader.builders.autograder import build

    out = tmp_path_factory.mktemp("bundle") / "autograder.zip"
    build("gan", out)
    return out


@pytest.mark.skipif(os.geteuid() != 0, reason="Gradescope runs the autograder as root")
def test_fake_gradescope_without_bubblewrap_keeps_the_solutions_and_kills_everything(gan_bundle, readable_python,
                                                                                     tmp_path):
    """The issue's reproduction: the bundle in an /autograder-like root, bubblewrap unusable, a submission
    that delegates to the reference it finds under source/ and leaves a re-forking tree behind."""
    import shutil
    import time

    root = _gradescope_root(gan_bundle)
    try:
        (root / "submission" / "codebase").mkdir()
        (root / "submission" / "codebase" / "gan.py").write_text(DELEGATE.replace("ROOT_PATH", repr(str(root))))
        assert (root / "source").stat().st_mode & 0o005 == 0o005     # readable by all when unpacked
        tmpdir = root.with_name(root.name + "-tmp")   # TMPDIR of the run, to see what it leaves
        tmpdir.mkdir()
        os.chmod(tmpdir, 0o1777)
        results = _run_autograder(root, readable_python, tmpdir)
        assert results["score"] == 0, results["score"]
        graded = [t for t in results["tests"] if t["tags"] not in (["answers"], ["manual"])]
        assert len(graded) == 36 and all("PermissionError" in t["output"] or "problem 1 at the top" in t["output"]
                                         for t in graded), graded[0]["output"]
        assert "PermissionError" in results["output"]   # the problem that stopped everything, stated once
        assert "uid of its own" in results["output"] and "file permissions" in results["output"]
        security = (root / "source" / "SECURITY.md").read_text()     # what the bundle promises is what held
        assert "network is not closed" in security and "NOT closed" in results["output"]
        assert (root / "source").stat().st_mode & 0o077 == 0          # closed by run_autograder and the grader
        time.sleep(0.5)                                                # a survivor would write by now
        assert reserved_uid_processes() == [], "a process of the submission outlived run_autograder"
        assert json.loads((root / "results" / "results.json").read_text())["score"] == 0
        assert not [p.name for p in tmpdir.iterdir() if p.name.startswith("dgm-")], "temporary folders were left"
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(root.with_name(root.name + "-tmp"), ignore_errors=True)


def _private_python() -> bool:
    from grader.sandbox import isolation

    return not isolation.readable(isolation.interpreter(sys.executable))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_a_root_grader_whose_python_is_private_makes_the_uid_barrier_work(gan_bundle, tmp_path):
    """A Python no other user may read (pyenv's, under /root) leaves no uid to run as: the grader makes
    a hard-linked copy every uid can read, and student code runs behind the uid barrier."""
    import shutil

    if not _private_python():
        pytest.skip("this Python is readable by every user: the uid barrier holds without a copy")
    root = _gradescope_root(gan_bundle)
    copies = Path(tempfile.mkdtemp(prefix="dgm-copies-", dir="/tmp"))
    os.chmod(copies, 0o755)
    try:
        shutil.copytree(REPO_ROOT / "assignments" / "gan" / "examples" / "alice_correct", root / "submission",
                        dirs_exist_ok=True)
        tmpdir = tmp_path / "tmp"
        tmpdir.mkdir()
        results = _run_autograder(root, sys.executable, tmpdir, DGM_PYTHON_COPIES=str(copies))
        assert "runs as an unprivileged uid" in results["output"] and "NO isolation" not in results["output"]
        assert results["score"] == 48
        [copy] = [p for p in copies.iterdir() if p.name != ".lock"]   # (.lock: one maker at a time)
        assert (copy / ".complete").is_file()
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(copies, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_a_root_grader_that_can_make_no_barrier_refuses_in_one_line(gan_bundle, tmp_path):
    """Where no readable copy can be made either, a root grader grades nothing and says why in one line
    (results.json on Gradescope, the terminal for `grader grade`); it never runs student code as root."""
    import shutil
    import subprocess

    if not _private_python():
        pytest.skip("this Python is readable by every user: the uid barrier holds without a copy")
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    copies = private / "copies"                  # under a folder no other user can pass
    marker = tmp_path / "ran-as"
    source = REFERENCE_GAN + f"\nimport os\nopen({str(marker)!r}, 'w').write(str(os.getuid()))\n"
    root = _gradescope_root(gan_bundle)
    try:
        write_gan(root / "submission", source)
        tmpdir = tmp_path / "tmp"
        tmpdir.mkdir()
        results = _run_autograder(root, sys.executable, tmpdir, DGM_PYTHON_COPIES=str(copies))
        assert results["score"] == 0 and not marker.exists()
        assert "refusing to run student code as root with no isolation barrier" in json.dumps(results)
        env = {**os.environ, "DGM_NO_BWRAP": "1", "DGM_PYTHON_COPIES": str(copies)}
        env.pop("DGM_WORKER_PYTHON", None)
        proc = subprocess.run([sys.executable, "-m", "grader", "grade", "--assignment", "gan", "--out",
                               str(tmp_path / "out"), str(root / "submission")], env=env, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 2 and not marker.exists()
        [line] = proc.stderr.strip().splitlines()
        assert line.startswith("grader: error: refusing to run student code as root") and "DGM_WORKER_PYTHON" in line
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_the_plan_names_the_missing_barrier_for_an_ordinary_user(monkeypatch):
    """Not root: no uid to switch to, so no server grades two submissions; without bubblewrap, no barrier."""
    from conftest import reset_isolation
    from grader.sandbox import isolation

    monkeypatch.setattr(isolation, "is_root", lambda: False)
    try:
        for no_bwrap in (False, True):
            if no_bwrap:
                monkeypatch.setenv("DGM_NO_BWRAP", "1")
            reset_isolation()
            p = isolation.plan()
            assert not p.own_uid and not p.reuse_servers
            if p.bwrap:
                assert p.barrier == "bubblewrap" and not any("NO isolation" in x for x in p.layers())
            else:
                assert p.barrier == "none"
                assert any("NO isolation barrier (not root" in x for x in p.layers())
    finally:
        monkeypatch.undo()
        reset_isolation()


# ------------------------------------------------------------------ one student attacks the next

LEAVE = '''
def loss_minimax(g, d, x_real, *, device):
    import ctypes, os, signal, time
    libc = ctypes.CDLL(None, use_errno=True)
    left = []
    shm = libc.shmget(0x0D6A0001, 4096, 0o1666)          # IPC_CREAT | 0666
    if shm >= 0:
        libc.shmat.restype = ctypes.c_void_p
        addr = libc.shmat(shm, None, 0)
        ctypes.memmove(addr, b"secret-of-the-last-student", 26)
        left.append("shm")
    nr = {"x86_64": 248, "aarch64": 217}.get(os.uname().machine)
    if nr and libc.syscall(nr, b"user", b"dgm-secret", b"psst", 4, ctypes.c_long(-4)) > 0:   # add_key to @u
        left.append("key")
    rt = ctypes.CDLL("librt.so.1", use_errno=True)
    if rt.mq_open(b"/dgm-left", os.O_CREAT | os.O_RDWR, 0o666, None) >= 0:
        left.append("mqueue")
    for folder in ("/tmp", "/var/tmp", "/dev/shm", os.environ.get("HOME", ".")):
        try:
            with open(os.path.join(folder, "dgm-left.txt"), "w") as f:
                f.write("from the last student")
            os.chmod(os.path.join(folder, "dgm-left.txt"), 0o666)
            left.append(folder)
        except OSError:
            pass
    if os.fork() == 0:
        os.setsid()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            if os.fork() != 0:
                os._exit(0)
            time.sleep(0.02)
    raise RuntimeError("left " + " ".join(left))
'''
FIND = '''
def loss_minimax(g, d, x_real, *, device):
    import ctypes, os
    libc = ctypes.CDLL(None, use_errno=True)
    found = []
    if libc.shmget(0x0D6A0001, 0, 0) >= 0:
        found.append("shm")
    nr = {"x86_64": 250, "aarch64": 219}.get(os.uname().machine)
    if nr and libc.syscall(nr, 10, ctypes.c_long(-4), b"user", b"dgm-secret", 0) > 0:   # KEYCTL_SEARCH @u
        found.append("key")
    rt = ctypes.CDLL("librt.so.1", use_errno=True)
    if rt.mq_open(b"/dgm-left", os.O_RDONLY, 0, None) >= 0:
        found.append("mqueue")
    for folder in ("/tmp", "/var/tmp", "/dev/shm", os.environ.get("HOME", ".")):
        if os.path.exists(os.path.join(folder, "dgm-left.txt")):
            found.append(folder)
    me = {os.getpid(), os.getppid()}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat("/proc/" + pid).st_uid == os.getuid() and int(pid) not in me:
                found.append("process " + pid)
        except OSError:
            pass
    if found:
        raise RuntimeError("FOUND " + " ".join(found))
    return REFERENCE(g, d, x_real, device=device)
'''


def _reference_as(name: str) -> str:
    start = REFERENCE_GAN.index("\ndef loss_minimax(")
    end = REFERENCE_GAN.find("\ndef ", start + 1)
    return REFERENCE_GAN[start:end if end != -1 else None].replace("def loss_minimax(", f"def {name}(")


@pytest.mark.skipif(os.geteuid() != 0, reason="a uid per submission needs root")
@pytest.mark.parametrize("mode", ["bwrap", "no-bwrap"])
def test_nothing_of_one_student_reaches_the_next_even_with_the_same_uid(gan_assignment, tmp_path, monkeypatch,
                                                                        mode, request):
    """One reserved uid only, so the next student runs as the very uid the last one used: its processes,
    shared memory, keyring key, message queue and files must all be gone."""
    from conftest import reset_isolation
    from grader.sandbox import isolation

    if mode == "bwrap" and isolation.bwrap_path() is None:
        pytest.skip("bubblewrap not available")
    if mode == "no-bwrap":
        request.getfixturevalue("without_bwrap")
    only = isolation.uid_range()[-1]      # of this test process's own range (pytest-xdist gives each its own)
    monkeypatch.setenv("DGM_UID_RANGE", f"{only}-{only}")
    cls = tmp_path / "class"
    write_gan(cls / "a_leaver", replace_function(REFERENCE_GAN, "loss_minimax", LEAVE))
    write_gan(cls / "b_finder", replace_function(REFERENCE_GAN, "loss_minimax", FIND) + _reference_as("REFERENCE"))
    try:
        results = {r.submission: r for r in run_grade(assignment=gan_assignment, submissions=[cls],
                                                       out=tmp_path / "out", quiet=True)}
    finally:
        reset_isolation()
    leaver = [t.output for t in results["a_leaver"].tests if t.tags == ["loss_minimax"]][0]
    assert "left shm" in leaver and "mqueue" not in leaver, leaver     # queues cannot even be made
    finder = [t.output for t in results["b_finder"].tests if t.tags == ["loss_minimax"] and not t.passed]
    assert results["b_finder"].score == 45, finder
    assert reserved_uid_processes() == []
    with open("/proc/key-users") as f:      # only the two (empty) user keyrings of the uid may remain
        keys = {line.split(":")[0].strip(): int(line.split()[1]) for line in f}
    assert keys.get(str(only), 0) <= 2
    with open("/proc/sysvipc/shm") as f:    # (with bubblewrap the segment lived in the sandbox's namespace)
        assert not [line for line in f.read().splitlines()[1:] if line.split()[7] == str(only)]


MKDIR_OUT = '''
    import os
    if (NAME, os.getpid()) not in _MADE:    # once per run, as a training script makes its output folder
        _MADE.add((NAME, os.getpid()))
        os.mkdir("out")                     # fails if an earlier function's folder is still here
        with open(os.path.join("out", NAME + ".txt"), "w") as f:
            f.write("started")
'''


def _mkdir_first(source: str) -> str:
    """Every graded function of ``source`` starts by making the folder out/ (once per process) and a file in it."""
    for name in ("loss_minimax", "loss_nonsaturating", "conditional_loss_nonsaturating", "loss_wasserstein_gp"):
        head = source.index(f"\ndef {name}(")
        body = source.index(":\n", source.index(")", head)) + 2
        source = source[:body] + MKDIR_OUT.lstrip("\n").replace("NAME", repr(name)) + source[body:]
    return "_MADE = set()\n" + source


@pytest.mark.parametrize("fork", ["fork", "no-fork"])
def test_every_graded_function_starts_in_a_fresh_empty_folder(gan_assignment, tmp_path, monkeypatch, fork):
    """What one function leaves in its working folder is gone when the next one starts."""
    from conftest import reset_isolation

    if fork == "no-fork":
        monkeypatch.setenv("DGM_NO_FORK", "1")
        reset_isolation()
    try:
        r = grade(gan_assignment, write_gan(tmp_path / "s", _mkdir_first(REFERENCE_GAN)))
    finally:
        monkeypatch.undo()
        reset_isolation()
    assert r.score == 45, [t.output for t in r.tests if not t.passed and t.tags != ["answers"]][:1]


LEAVE_DEEP = '''
def loss_minimax(g, d, x_real, *, device):
    import os, tempfile
    here = os.getcwd()
    for folder in dict.fromkeys((here, tempfile.gettempdir())):   # (in bubblewrap /tmp is not writable)
        if os.path.exists(os.path.join(folder, "left-deep")):         # left by an earlier call
            continue
        os.chdir(folder)
        os.mkdir("left-deep")                 # deeper than any path can name, and unreadable at the bottom
        os.chdir("left-deep")
        for _ in range(3000):
            os.mkdir("d")
            os.chdir("d")
        os.chmod(".", 0)
        os.chdir(folder)
        os.mkdir("left-many")
        for i in range(NFILES):
            open(os.path.join("left-many", str(i)), "w").close()
            if i % 10 == 0:
                open("left-file-" + str(i), "w").close()
    os.chdir(here)
    raise RuntimeError("left a deep tree and many files")
'''
FIND_DEEP = '''
def loss_minimax(g, d, x_real, *, device):
    import os, tempfile
    found = []
    for folder in (os.getcwd(), os.environ["HOME"], tempfile.gettempdir()):
        for name in os.listdir(folder):
            if name.startswith("left-") or os.lstat(os.path.join(folder, name)).st_uid == os.getuid():
                found.append(os.path.join(folder, name))
    if found:
        raise RuntimeError("FOUND " + " ".join(found[:5]))
    return REFERENCE(g, d, x_real, device=device)
'''


@pytest.mark.skipif(os.geteuid() != 0, reason="a uid per submission needs root")
def test_a_deep_tree_and_many_files_never_reach_the_next_student_with_the_same_uid(gan_assignment, tmp_path,
                                                                                   monkeypatch):
    """The purge removes without recursion or entry limit; the next holder of the uid finds nothing."""
    from conftest import reset_isolation

    monkeypatch.setenv("DGM_UID_RANGE", "61990-61990")
    cls = tmp_path / "class"
    write_gan(cls / "a_leaver", replace_function(REFERENCE_GAN, "loss_minimax",
                                                 LEAVE_DEEP.replace("NFILES", "30_000")))
    write_gan(cls / "b_finder", replace_function(REFERENCE_GAN, "loss_minimax", FIND_DEEP) + _reference_as("REFERENCE"))
    a = replace(gan_assignment, probe_timeout_s=30.0)
    try:
        results = {r.submission: r for r in run_grade(assignment=a, submissions=[cls], out=tmp_path / "out",
                                                       quiet=True)}
    finally:
        reset_isolation()
    leaver = [t.output for t in results["a_leaver"].tests if t.tags == ["loss_minimax"]][0]
    assert "left a deep tree" in leaver or "files and folders" in leaver, leaver
    assert results["a_leaver"].score == HONEST_WITHOUT_MINIMAX
    finder = [t.output for t in results["b_finder"].tests if t.tags == ["loss_minimax"] and not t.passed]
    assert results["b_finder"].score == 45, finder
    assert reserved_uid_processes() == []


@pytest.mark.heavy
@pytest.mark.skipif(os.geteuid() != 0, reason="files of another uid need root")
def test_the_purge_removes_any_depth_and_any_number_of_entries_and_says_when_it_could_not(tmp_path, monkeypatch):
    import shutil

    from grader.sandbox.worker import contain

    uid = 61991
    root = tmp_path / "tmp"
    root.mkdir()
    os.chmod(root, 0o1777)                               # a world-writable root, as /tmp
    deep = root / "deep"
    deep.mkdir()
    os.chown(deep, uid, uid)
    start = os.open(".", os.O_RDONLY)
    try:
        os.chdir(deep)
        for _ in range(5000):                            # shutil.rmtree: RecursionError; paths: too long
            os.mkdir("d")
            os.chown("d", uid, uid)
            os.chdir("d")
        os.chmod(".", 0)
    finally:
        os.fchdir(start)
        os.close(start)
    many = root / "many"
    many.mkdir()
    for i in range(250_000):                             # more entries than the old walk looked at
        open(many / str(i), "w").close()
    os.chown(many, uid, uid)
    for i in range(1000):                                # loose files of the uid at the top
        open(root / f"f{i}", "w").close()
        os.chown(root / f"f{i}", uid, uid)
    assert contain._du_kb(uid, [str(root)]) is None      # too deep to count: over the cap, never "fine"
    with pytest.raises(RecursionError):
        shutil.rmtree(deep / "d")
    assert contain.purge(uid, [str(root)]) is True
    assert list(root.iterdir()) == []
    open(root / "stuck", "w").close()
    os.chown(root / "stuck", uid, uid)
    monkeypatch.setattr(contain, "remove_tree", lambda path: False)   # something that will not go
    assert contain.remove_files(uid, [str(root)]) is False and contain.purge(uid, [str(root)]) is False


# ------------------------------------------------------------------ caps on a submission as a whole

@pytest.mark.skipif(not os.path.exists("/proc/self/smaps_rollup"), reason="Linux only")
def test_memory_is_capped_for_all_processes_of_a_submission_together(gan_assignment, tmp_path):
    """Six processes of 150 MB each stay under any per-process limit, not under a 512 MB cap on the lot."""
    body = '''
def loss_minimax(g, d, x_real, *, device):
    import os, time
    for _ in range(5):
        if os.fork() == 0:
            break
    block = b"x" * (150 << 20)
    time.sleep(30)
'''
    from dataclasses import replace

    from grader.sandbox.runner import Limits

    a = replace(gan_assignment, probe_timeout_s=25.0)
    r = grade(a, write_gan(tmp_path / "s", replace_function(REFERENCE_GAN, "loss_minimax", body)),
              limits=Limits(timeout_s=25.0, memory_mb=512))
    minimax = [t.output for t in r.tests if t.tags == ["loss_minimax"]]
    assert r.score == HONEST_WITHOUT_MINIMAX
    assert all("more than 512 MB of memory" in out for out in minimax), minimax[0]
    assert worker_processes() == [] and (os.geteuid() != 0 or reserved_uid_processes() == [])


SHARED_MAPPING = '''
def loss_minimax(g, d, x_real, *, device):
    import mmap, os, time
    for _ in range(2):                    # three processes, each under any per-process limit
        if os.fork() == 0:
            break
    block = mmap.mmap(-1, 400 << 20, flags=mmap.MAP_SHARED)   # shared with a child: nobody's private
    if os.fork() == 0:
        for i in range(0, len(block), 4096):
            block[i] = 1
    time.sleep(30)
'''

MEMORY_FILE = '''
def loss_minimax(g, d, x_real, *, device):
    import os, time
    chunk = b"x" * (1 << 20)
    held = []
    for _ in range(60):                   # memory-backed files in no folder, never mapped
        fd = os.memfd_create("hold")
        for _ in range(15):               # under the per-file size limit
            os.write(fd, chunk)
        held.append(fd)
    time.sleep(30)
'''


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps_rollup"), reason="Linux only")
@pytest.mark.parametrize("caps", ["kernel", "watchdog"])
@pytest.mark.parametrize("body", [SHARED_MAPPING, MEMORY_FILE], ids=["shared-mapping", "memfd"])
def test_memory_the_kernel_charges_counts_toward_the_cap(gan_assignment, tmp_path, monkeypatch, caps, body):
    """Pages shared between a submission's processes and memory-backed files nobody maps are memory:
    900 MB of either goes over a 512 MB cap, whether the kernel (a cgroup) or the watchdog enforces it."""
    from dataclasses import replace

    from conftest import reset_isolation
    from grader.sandbox.runner import Limits

    if caps == "watchdog":
        monkeypatch.setenv("DGM_NO_CGROUPS", "1")
    elif os.geteuid() != 0:
        pytest.skip("cgroups need root")
    reset_isolation()
    try:
        a = replace(gan_assignment, probe_timeout_s=25.0)
        r = grade(a, write_gan(tmp_path / "s", replace_function(REFERENCE_GAN, "loss_minimax", body)),
                  limits=Limits(timeout_s=25.0, memory_mb=512))
    finally:
        monkeypatch.undo()
        reset_isolation()
    minimax = [t.output for t in r.tests if t.tags == ["loss_minimax"]]
    assert r.score == HONEST_WITHOUT_MINIMAX
    assert all("more than 512 MB of memory" in out for out in minimax), minimax[0]
    if caps == "kernel" and "cgroup" in "; ".join(r.layers):
        assert "enforced by the kernel" in minimax[0]
    assert worker_processes() == [] and (os.geteuid() != 0 or reserved_uid_processes() == [])


HOG = '''
def _hog():
    import os, signal, time
    busy = []
    for _ in range(12):                   # busy processes, to starve whoever is graded beside us
        pid = os.fork()
        if pid == 0:
            os.setsid()                   # each its own session: the scheduler's autogroups see 12 users
            while True:
                pass
        busy.append(pid)
    time.sleep(2)                         # under its 3 s: an error, so it is not graded again alone
    for pid in busy:                      # (else, starved by its own 12, it takes long to say so)
        os.kill(pid, signal.SIGKILL)
    raise RuntimeError("hogged")


def loss_minimax(g, d, x_real, *, device):
    _hog()


def loss_nonsaturating(g, d, x_real, *, device):
    _hog()


def conditional_loss_nonsaturating(g, d, x_real, y_real, *, device):
    _hog()


def loss_wasserstein_gp(g, d, x_real, *, device):
    _hog()
'''


@pytest.mark.heavy
@pytest.mark.skipif(os.geteuid() != 0, reason="cgroups need root")
def test_a_student_with_many_busy_processes_does_not_starve_the_one_graded_beside_it(gan_assignment, tmp_path):
    """CPU is shared equally between submissions graded at once (a cgroup each), not between
    processes: twelve busy processes of one student leave the honest neighbour its full score."""
    from dataclasses import replace

    cls = tmp_path / "class"
    write_gan(cls / "a_hog", REFERENCE_GAN.split("\ndef ", 1)[0] + "\n" + HOG)
    write_gan(cls / "b_honest", REFERENCE_GAN)
    a = replace(gan_assignment, probe_timeout_s=3.0)   # an honest function needs well under a second
    results = {r.submission: r for r in run_grade(assignment=a, submissions=[cls], out=tmp_path / "out",
                                                   jobs=2, quiet=True)}
    if "cgroup" not in "; ".join(results["b_honest"].layers) and not os.environ.get("DGM_FORCE_CPU_TEST"):
        pytest.skip("no cgroup could be made here")
    honest = [t.output for t in results["b_honest"].tests if not t.passed and t.tags != ["answers"]]
    assert honest == [] and results["b_honest"].score == 45   # every code point (no answers file)
    assert not any(t.passed for t in results["a_hog"].tests if not t.manual)
    assert reserved_uid_processes() == []


@pytest.mark.skipif(os.geteuid() != 0, reason="a uid of its own needs a root grader")
@pytest.mark.parametrize("bwrap", ["bwrap", "no-bwrap"])
def test_a_submission_cannot_write_where_its_disk_cap_does_not_look(gan_assignment, tmp_path, monkeypatch, bwrap):
    """A world-writable folder the grader does not walk (not /tmp, /var/tmp, /dev/shm): without bubblewrap,
    a file there would escape the disk cap and the purge, and reach the next student of the same uid.
    Landlock confines the submission's writes to the folders the caps count; bubblewrap shows no such
    folder at all."""
    from conftest import reset_isolation
    from grader.sandbox.runner import bwrap_path
    from grader.sandbox.worker import contain

    if bwrap == "bwrap" and (bwrap_path() is None or os.environ.get("DGM_NO_BWRAP")):
        pytest.skip("bubblewrap not available")
    if bwrap == "no-bwrap" and contain.landlock_abi() < 1:
        pytest.skip("no Landlock in this kernel (the caps then walk only the listed folders; docs/security.md)")
    hideout = Path(f"/var/dgm-hideout-{os.getpid()}")
    hideout.mkdir(mode=0o777)
    os.chmod(hideout, 0o1777)
    body = f'''
def loss_minimax(g, d, x_real, *, device):
    with open({str(hideout / "stash")!r}, "wb") as f:
        f.write(b"x" * (4 << 20))
    raise RuntimeError("WROTE OUTSIDE")
'''
    if bwrap == "no-bwrap":
        monkeypatch.setenv("DGM_NO_BWRAP", "1")
    reset_isolation()
    try:
        r = grade(gan_assignment, write_gan(tmp_path / "s", replace_function(REFERENCE_GAN, "loss_minimax", body)))
        assert list(hideout.iterdir()) == []
    finally:
        monkeypatch.undo()
        reset_isolation()
        contain.remove_tree(str(hideout))
    minimax = [t.output for t in r.tests if t.tags == ["loss_minimax"]]
    assert minimax and not any("WROTE OUTSIDE" in out for out in minimax), minimax[0]
    assert any(err in minimax[0] for err in ("PermissionError", "FileNotFoundError", "OSError")), minimax[0]
    if bwrap == "no-bwrap":
        assert any("Landlock" in layer for layer in r.layers), r.layers
    assert r.score == HONEST_WITHOUT_MINIMAX


@pytest.mark.skipif(os.geteuid() != 0 or sys.platform != "linux", reason="mounts and uids need a root grader on Linux")
def test_a_uid_that_cannot_be_emptied_is_retired_and_the_submission_graded_under_another(gan_assignment, tmp_path,
                                                                                        monkeypatch):
    """Something of an earlier submission survives under a uid (here a busy mount point it owns in /tmp,
    which no purge can remove): no student code runs beside it. The worker refuses the uid, the grader
    retires it for good (a .retired file) and grades the submission under another uid."""
    import fcntl
    import subprocess
    import threading

    from conftest import reset_isolation
    from grader.sandbox import isolation

    first = isolation.uid_range()[-2]           # two uids of this test process's own range
    monkeypatch.setenv("DGM_NO_BWRAP", "1")
    monkeypatch.setenv("DGM_UID_RANGE", f"{first}-{first + 1}")
    reset_isolation()
    lock_dir = isolation._lock_dir()
    retired = Path(lock_dir) / f"{first}.retired"
    held = os.open(os.path.join(lock_dir, f"{first + 1}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(held, fcntl.LOCK_EX)             # the other uid is busy at first: the grader takes `first`
    threading.Timer(3.0, os.close, (held,)).start()
    leftover = Path(f"/tmp/dgm-leftover-{os.getpid()}")
    leftover.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size=1m,uid={first},gid={first}", "none",
                              str(leftover)], capture_output=True).returncode == 0
    try:
        if not mounted:
            pytest.skip("cannot mount a tmpfs here")
        head = "def loss_minimax(g, d, x_real, *, device):\n"
        src = REFERENCE_GAN.replace(head, head + f"    import os\n    assert os.getuid() != {first}, 'ran beside it'\n", 1)
        r = grade(gan_assignment, write_gan(tmp_path / "s", src))
        assert retired.exists() and f"uid {first} retired" in retired.read_text()
        assert not (Path(lock_dir) / f"{first + 1}.retired").exists()
        assert r.score == 45, [t.output for t in r.tests if not t.passed]
        lease = isolation.lease_uid(wait_s=0.5)
        try:
            assert lease.uid == first + 1               # never the retired one again
            with pytest.raises(isolation.IsolationError, match="in use or retired"):
                isolation.lease_uid(wait_s=0.5)
        finally:
            lease.release()
    finally:
        subprocess.run(["umount", str(leftover)], capture_output=True)
        leftover.rmdir()
        retired.unlink(missing_ok=True)
        monkeypatch.undo()
        reset_isolation()


def test_scratch_disk_is_capped_for_a_submission(gan_assignment, tmp_path):
    body = '''
def loss_minimax(g, d, x_real, *, device):
    import os, tempfile, time
    block = b"x" * (10 << 20)
    for i in range(30):
        for folder in (tempfile.gettempdir(), os.environ["HOME"]):
            try:
                with open(os.path.join(folder, f"fill{i}"), "wb") as f:
                    f.write(block)
            except OSError:
                pass
        time.sleep(0.05)
    time.sleep(5)
    raise RuntimeError("the cap never came")
'''
    from grader.sandbox.runner import Limits

    r = grade(gan_assignment, write_gan(tmp_path / "s", replace_function(REFERENCE_GAN, "loss_minimax", body)),
              limits=Limits(disk_mb=64))
    minimax = [t.output for t in r.tests if t.tags == ["loss_minimax"]]
    assert r.score == HONEST_WITHOUT_MINIMAX
    assert all("more than 64 MB of files" in out for out in minimax), minimax[0]


# ------------------------------------------------------------------ untrusted text, parsed within bounds

BILLION_LAUGHS = """a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
4.2a: {answer: *i}
"""


def test_an_answers_file_of_nested_aliases_is_refused_at_once(gan_assignment, tmp_path):
    import time

    sub = write_gan(tmp_path / "s", REFERENCE_GAN)
    (sub / "gan_answers.yaml").write_text(BILLION_LAUGHS)
    start = time.monotonic()
    r = grade(gan_assignment, sub)
    assert time.monotonic() - start < 30 and not r.grader_errors
    answers = [t.output for t in r.tests if t.tags == ["answers"]]
    assert answers and all("anchors and aliases" in out for out in answers), answers[0]
    assert r.score == 45


def test_absurd_numbers_in_answers_are_a_message_not_a_fault(gan_assignment, tmp_path):
    sub = write_gan(tmp_path / "s", REFERENCE_GAN)
    (sub / "gan_answers.yaml").write_text("4.2a:\n  answer: " + "9" * 5000 + "\n")
    r = grade(gan_assignment, sub)
    assert not r.grader_errors and r.score == 45
    assert all("cannot be read" in t.output for t in r.tests if t.tags == ["answers"])


def test_a_source_file_of_megabytes_costs_its_author_only(gan_assignment, tmp_path):
    """A few MB of expressions: the worker server never parses it; the probes compile it under limits."""
    import time

    bloat = "\n_BLOAT = [" + "(1, 2.5, 'x'), " * 60_000 + "]\n" + ("# padding, padding, padding\n" * 100_000)
    start = time.monotonic()
    r = grade(gan_assignment, write_gan(tmp_path / "s", REFERENCE_GAN + bloat))
    assert not r.grader_errors and r.score == 45, [t.output for t in r.tests if not t.passed][:1]
    assert len(bloat) > 3_500_000 and time.monotonic() - start < 120


def test_a_source_of_a_million_lines_is_refused_at_once_with_a_message(gan_assignment, tmp_path):
    """Every probe imports the module anew: a source far beyond any homework is refused, not graded for minutes."""
    r = grade(gan_assignment, write_gan(tmp_path / "s", REFERENCE_GAN + "x = 1\n" * 1_000_000))
    assert not r.grader_errors and r.status == "invalid" and r.score == 0
    assert "more than 1 MB of code" in " ".join(r.problems), r.problems
    comments = REFERENCE_GAN + "# a comment costs the compiler next to nothing\n" * 200_000   # 9 MB, no code
    assert grade(gan_assignment, write_gan(tmp_path / "c", comments)).score == 45


def test_a_notebook_of_megabytes_costs_what_its_code_costs(tmp_path):
    """Outputs are never parsed as code; a notebook with megabytes of code is refused with a message."""
    import base64

    from grader.engine.assignment import load_assignment

    a = load_assignment("gan1d")
    nb = json.loads((REPO_ROOT / "assignments" / "gan1d" / "examples" / "frank_correct.ipynb").read_text())
    image = base64.b64encode(os.urandom(2_500_000)).decode()   # 3.3 MB of plot output
    plots = dict(nb, cells=nb["cells"] + [{"cell_type": "code", "source": "plt.show()", "metadata": {},
                                           "execution_count": 1, "outputs": [{"output_type": "display_data",
                                                                              "data": {"image/png": image},
                                                                              "metadata": {}}]}])
    (tmp_path / "plots.ipynb").write_text(json.dumps(plots))
    r = grade(a, tmp_path / "plots.ipynb")
    assert not r.grader_errors and r.score == a.auto_points, [t.output for t in r.tests if not t.passed][:1]
    code = "".join(f"losses.append({i})\n" for i in range(170_000))   # 3.4 MB of code
    pasted = dict(nb, cells=nb["cells"] + [{"cell_type": "code", "source": code, "metadata": {},
                                            "execution_count": 2, "outputs": []}])
    (tmp_path / "pasted.ipynb").write_text(json.dumps(pasted))
    r = grade(a, tmp_path / "pasted.ipynb")
    assert not r.grader_errors and r.status == "invalid"
    assert "MB of code; at most 1 MB is accepted" in " ".join(r.problems), r.problems


def test_hostile_notebook_cells_are_skipped_with_a_message(tmp_path):
    from grader.engine.assignment import load_assignment

    nb = json.loads((REPO_ROOT / "assignments" / "gan1d" / "examples" / "frank_correct.ipynb").read_text())
    nb["cells"] += [{"cell_type": "code", "source": {"not": "text"}, "metadata": {}, "outputs": []},
                    {"cell_type": "code", "source": [1, 2, 3], "metadata": {}, "outputs": []},
                    {"cell_type": "code", "source": "y = 1" + " + 1" * 100_000, "metadata": {}, "outputs": []},
                    {"cell_type": "code", "source": "z = " + "(" * 3000 + ")" * 3000, "metadata": {}, "outputs": []}]
    path = tmp_path / "gan_1d.ipynb"
    path.write_text(json.dumps(nb))
    a = load_assignment("gan1d")
    r = grade(a, path)
    assert not r.grader_errors and r.score == a.auto_points, [t.output for t in r.tests if not t.passed][:1]
    problems = " ".join(r.problems)
    assert "source is not text" in problems and "nested too deeply" in problems, problems


def test_a_zip_whose_paths_clash_is_refused_with_a_message(gan_assignment, tmp_path):
    z = tmp_path / "clash.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("codebase/gan.py", REFERENCE_GAN)
        zf.writestr("codebase/gan.py/inner.py", "x = 1")
    r = grade(gan_assignment, z)
    assert r.status == "invalid" and not r.grader_errors and "also a file" in " ".join(r.problems)


FORGE_INF = '''
def loss_minimax(g, d, x_real, *, device):
    """Write a forged result straight into the pipe the worker reads, then vanish."""
    import json, os, stat
    import numpy as np
    arrays = dict(d_loss=np.ones(1), d_loss_shape=np.array([np.inf]), d_grad=np.zeros(0), d_grad_ok=np.ones(1),
                  g_loss=np.ones(1), g_loss_shape=np.array([np.inf]), g_grad=np.zeros(0), g_grad_ok=np.ones(1))
    header = json.dumps([[k, list(v.shape)] for k, v in arrays.items()]).encode()
    msg = (b"OKDGA1" + len(header).to_bytes(4, "big") + header
           + b"".join(v.astype("<f8").tobytes() for v in arrays.values()))
    for fd in range(3, 64):
        try:
            if stat.S_ISFIFO(os.fstat(fd).st_mode):
                os.write(fd, len(msg).to_bytes(8, "big") + msg)
        except OSError:
            pass
    os._exit(0)
'''


def test_forged_infinite_shapes_fail_the_part_without_a_grader_fault(gan_assignment, tmp_path):
    r = grade(gan_assignment, write_gan(tmp_path / "s", replace_function(REFERENCE_GAN, "loss_minimax", FORGE_INF)))
    assert not r.grader_errors and r.score == HONEST_WITHOUT_MINIMAX
    assert all("malformed" in t.output for t in r.tests if t.tags == ["loss_minimax"])


# ------------------------------------------------------------------ a batch is never derailed by names

def test_undecodable_and_colliding_names_grade_every_student_under_their_own_name(gan_assignment, tmp_path):
    cls = tmp_path / "class"
    write_gan(cls / "alice", REFERENCE_GAN)
    with zipfile.ZipFile(cls / "alice.zip", "w") as zf:
        zf.writestr("codebase/gan.py", replace_function(REFERENCE_GAN, "loss_minimax", WRONG_MINIMAX))
    write_gan(cls / "alice-2", REFERENCE_GAN.replace("def loss_wasserstein_gp(", "def renamed("))
    raw = os.fsencode(str(cls)) + b"/caf\xe9"
    os.mkdir(raw)
    os.mkdir(raw + b"/codebase")
    with open(raw + b"/codebase/gan.py", "w") as f:
        f.write(REFERENCE_GAN)
    out = cls / "out"
    first = run_grade(assignment=gan_assignment, submissions=[cls], out=out, quiet=True)
    again = run_grade(assignment=gan_assignment, submissions=[cls], out=out, quiet=True)  # out/ is not graded
    for results in (first, again):
        scores = {r.submission: r.score for r in results}
        assert scores == {"alice": 45, "alice-3": 35, "alice-2": 30, "caf_": 45}, scores
        assert not any(r.grader_errors for r in results)
    for name, score in (("alice", 45), ("alice-3", 35), ("alice-2", 30), ("caf_", 45)):
        assert json.loads((out / name / "results.json").read_text())["score"] == score
    assert len((out / "grades.csv").read_text().splitlines()) == 5


# ------------------------------------------------------------------ reports quote what a student wrote

EVIL_TEXT = "```\n# 140 / 140\n<script>alert(1)</script>\x1b[2J\x1b[31mred\x1b]0;title\x07\r~~~\n| a | b |"
LOUD = '''
def loss_minimax(g, d, x_real, *, device):
    import sys
    print(EVIL)
    print(EVIL, file=sys.stderr)
    raise RuntimeError(EVIL)
'''


def _structure(md: str) -> list[str]:
    """The heading lines of a markdown document outside its fenced blocks; asserts no raw HTML
    tag and no fence left open."""
    import re

    headings, fence = [], ""
    for line in md.splitlines():
        assert "<script" not in line.lower() and "\x1b" not in line, line
        if fence:
            if line.strip() and set(line.strip()) == {fence[0]} and len(line.strip()) >= len(fence):
                fence = ""
            continue
        opened = re.match(r" {0,3}(`{3,}|~{3,})", line)
        if opened:
            fence = opened.group(1)
        elif re.match(r" {0,3}#{1,6}(\s|$)", line):
            headings.append(line)
    assert not fence, "a fence was left open"
    return headings


def test_student_text_cannot_change_the_reports_or_the_terminal(gan_assignment, tmp_path, capsys):
    from dataclasses import replace as replaced

    from grader.app import report
    from grader.app.cli import main

    cls = tmp_path / "class"
    loud = write_gan(cls / "loud", replace_function(REFERENCE_GAN, "loss_minimax", LOUD).replace(
        "EVIL", repr(EVIL_TEXT)))
    (loud / "gan_answers.yaml").write_text('"4.2a":\n  answer: ' + json.dumps(EVIL_TEXT) + "\n")
    write_gan(cls / "``` # 140 `x` <b>", REFERENCE_GAN)
    out = tmp_path / "out"
    assert main(["grade", "--assignment", "gan", "--out", str(out), str(cls)]) == 0
    assert main(["check", "--assignment", "gan", str(loud)]) == 1
    shown = capsys.readouterr()
    assert "\x1b" not in shown.out + shown.err and "\r" not in shown.out + shown.err
    assert "FAIL" in shown.out and "RuntimeError" in shown.out       # the student still reads the message
    rows = (out / "grades.csv").read_text().splitlines()
    assert len(rows) == 3 and "loud,10,10,15,0,0,35,48,error" in rows, rows
    for folder in (p for p in out.iterdir() if p.is_dir()):
        results = json.loads((folder / "results.json").read_text())
        md = (folder / "feedback.md").read_text()
        failed = [t for t in results["tests"] if t["status"] == "failed"]
        stopped = [t for t in failed if t["output"].startswith("Not run: your code stopped")]   # point to a problem
        stops = results["output"].count("\nProblem ")                  # each stated once, as a heading of its own
        headings = _structure(md)
        assert headings[0].startswith("# gan: ") and len(headings) == 1 + stops + len(failed) - len(stopped), headings
        assert all(h.startswith("## ") and "140 / 140" not in h for h in headings[1:]), headings
        if folder.name == "loud":
            assert results["score"] == HONEST_WITHOUT_MINIMAX
            assert "&lt;script&gt;alert(1)" in md                  # shown, as text
        else:
            assert results["score"] == 45
    headings = _structure((out / "summary.md").read_text())
    assert headings[0] == "# Summary: 2 submissions" and all(h.startswith("## ") for h in headings[1:])
    from grader.engine.results import GradeResult

    loud_result = GradeResult.from_dict(json.loads((out / "loud" / ".grade-cache.json").read_text())["result"])
    named = replaced(loud_result, submission="```\n# 140 / 140 <script>x</script>", problems=[EVIL_TEXT])
    headings = _structure(report.feedback_md(named))                # a name that no batch would make
    assert len(headings) == 1 + len(named.stops) + len(
        [t for t in named.tests if not t.passed and not t.manual and not t.stopped]), headings
    assert "\x1b" not in report.table([named], details=True)


# ------------------------------------------------------------------ every exit path leaves nothing

SLOW = '''
def loss_minimax(g, d, x_real, *, device):
    import subprocess, time
    subprocess.Popen(["sleep", "300"], start_new_session=True)
    time.sleep(300)
'''


def test_a_grader_stopped_by_sigterm_leaves_no_process_and_no_folder(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    cls = tmp_path / "class"
    for k in range(3):
        write_gan(cls / f"s{k}", replace_function(REFERENCE_GAN, "loss_minimax", SLOW))
    import shutil
    import tempfile

    tmpdir = Path(tempfile.mkdtemp(prefix="sigterm-tmp-", dir="/tmp"))   # a TMPDIR probe uids can pass
    os.chmod(tmpdir, 0o1777)
    request_cleanup = [tmpdir]
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    proc = subprocess.Popen([sys.executable, "-c", "from grader.app.cli import entry; entry()", "grade",
                             "--assignment", "gan", "--out", str(tmp_path / "out"), str(cls)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list(tmpdir.glob("dgm-*/stage/*")) and time.monotonic() < deadline:
        time.sleep(0.2)                       # until a submission is being graded
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)   # at once: no waiting for the probe that is running
    time.sleep(0.5)
    assert not [p.name for p in tmpdir.iterdir() if p.name.startswith("dgm-")], "temporary folders were left"
    marker = f"DGM_WORKER={proc.pid}".encode()
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if marker in f.read().split(b"\0"):
                    left.append(pid)
        except OSError:
            pass
    assert left == [] and (os.geteuid() != 0 or reserved_uid_processes() == [])
    for folder in request_cleanup:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_a_grader_killed_outright_leaves_nothing_the_next_one_keeps(tmp_path):
    """SIGKILL gives a grader no chance to clean up: the next grader removes its staged copies and
    cgroups before it leases any uid, and grades its own class in full."""
    import shutil
    import signal
    import subprocess
    import time

    cls = tmp_path / "class"
    for k in range(2):
        write_gan(cls / f"s{k}", replace_function(REFERENCE_GAN, "loss_minimax", SLOW))
    tmpdir = Path(tempfile.mkdtemp(prefix="sigkill-tmp-", dir="/tmp"))   # a TMPDIR probe uids can pass
    os.chmod(tmpdir, 0o1777)
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    try:
        proc = subprocess.Popen([sys.executable, "-m", "grader", "grade", "--assignment", "gan", "--out",
                                 str(tmp_path / "out1"), str(cls)], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not list(tmpdir.glob("dgm-*/stage/*")) and time.monotonic() < deadline:
            time.sleep(0.2)                       # until a submission is staged
        left = [p.name for p in tmpdir.iterdir() if p.name.startswith("dgm-")]
        assert left, "nothing was staged"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        groups = [d for d in Path("/sys/fs/cgroup").glob(f"*/dgm-{proc.pid}")]
        again = subprocess.run([sys.executable, "-m", "grader", "grade", "--assignment", "gan", "--out",
                                str(tmp_path / "out2"), str(REPO_ROOT / "assignments" / "gan" / "examples" /
                                                            "alice_correct")],
                               env=env, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr
        assert "48 / 48" in again.stdout
        assert not [name for name in left if (tmpdir / name).exists()], "the dead grader's folders were kept"
        assert not [d for d in groups if d.exists()], "the dead grader's cgroups were kept"
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


# ------------------------------------------------------------------ found in review (branch attack)
#
# Each of these is an attack that succeeded when it was written: the test fails until it is fixed.

ENV_SNOOP = '''
def loss_minimax(g, d, x_real, *, device):
    import ctypes
    ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)          # PR_SET_DUMPABLE: /proc/self/* are ours again
    environ = open("/proc/self/environ", "rb").read()
    cmdline = open("/proc/self/cmdline", "rb").read()
    leaks = []
    if b"DGM_TEST_GRADER_SECRET=" in environ:
        leaks.append("LEAK env " + environ.split(b"DGM_TEST_GRADER_SECRET=")[1].split(b"\\0")[0].decode())
    if b"--out" in cmdline:
        leaks.append("LEAK argv " + cmdline.replace(b"\\0", b" ").decode())
    raise RuntimeError(" ".join(leaks) or "nothing found")
'''


def _grade_with(python, cls, out, **env):
    """``grader grade`` as an instructor runs it, as its own process (its entry point forks the zygote)."""
    import subprocess

    env = {**os.environ, "DGM_NO_BWRAP": "1", "PYTHONPATH": str(REPO_ROOT), **env}
    proc = subprocess.run([python, "-m", "grader", "grade", "--assignment", "gan", "--out", str(out), str(cls)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode in (0, 1), proc.stderr
    return {p.parent.name: json.loads(p.read_text()) for p in out.glob("*/results.json")}


@pytest.mark.skipif(os.geteuid() != 0, reason="the uid barrier needs root")
def test_code_forked_from_the_zygote_sees_neither_the_graders_environment_nor_its_command_line(
        readable_python, tmp_path):
    """Attack: without bubblewrap, servers are forks of the zygote, a fork of the grader; the server
    clears os.environ, but the environment block and argv the grader was exec'd with stay in the
    process's memory (/proc/self/environ, /proc/self/cmdline once the child makes itself dumpable):
    every secret in the instructor's environment, the output folder and every submission path of
    the batch reach student code."""
    cls = tmp_path / "class"
    write_gan(cls / "alice_private", REFERENCE_GAN)
    write_gan(cls / "snoop", replace_function(REFERENCE_GAN, "loss_minimax", ENV_SNOOP))
    results = _grade_with(readable_python, cls, tmp_path / "out", DGM_TEST_GRADER_SECRET="hunter2-token")
    seen = [t["output"] for t in results["snoop"]["tests"] if t["tags"] == ["loss_minimax"]]
    assert seen and not any("LEAK" in s for s in seen), seen[0]


VICTIM_PRINTS = '''
def loss_minimax(g, d, x_real, *, device):
    print("VICTIM-" + "PRINTED: alice@example.edu, my approach: softplus of the logits")
    return REFERENCE(g, d, x_real, device=device)
'''
MEMORY_THIEF = '''
def loss_minimax(g, d, x_real, *, device):
    import ctypes, os
    ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)          # PR_SET_DUMPABLE: /proc/self/mem is ours again
    needle = "".join(reversed(":DETNIRP-MITCIV")).encode()    # built at run time: not a constant of ours
    mem = os.open("/proc/self/mem", os.O_RDONLY)
    stolen = set()
    for line in open("/proc/self/maps"):
        parts = line.split()
        path = parts[5] if len(parts) > 5 else ""
        if "r" not in parts[1] or path.startswith("/") or path in ("[vvar]", "[vsyscall]", "[vdso]"):
            continue
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        for a in range(lo, hi, 16 << 20):
            try:
                blob = os.pread(mem, min(16 << 20, hi - a), a)
            except OSError:
                continue
            at = blob.find(needle)
            while at != -1:
                if b"alice@" in blob[at:at + 60]:
                    stolen.add(blob[at:at + 60])
                at = blob.find(needle, at + 1)
    if stolen:
        raise RuntimeError("STOLEN %r" % sorted(stolen)[0])
    return REFERENCE(g, d, x_real, device=device)
'''


@pytest.mark.skipif(os.geteuid() != 0, reason="servers are reused only behind the uid barrier")
def test_a_student_cannot_read_what_the_last_one_printed_from_the_reused_servers_memory(readable_python,
                                                                                         tmp_path):
    """Attack: a warm server reads each submission's log tail (and results) into its own heap, and
    forks the next submission's probes from that heap: freed, not cleared. The next student scans
    its own memory and finds the last one's printed output (here, on the zygote's fork path)."""
    cls = tmp_path / "class"
    write_gan(cls / "a_victim", replace_function(REFERENCE_GAN, "loss_minimax", VICTIM_PRINTS)
              + _reference_as("REFERENCE"))
    write_gan(cls / "b_thief", replace_function(REFERENCE_GAN, "loss_minimax", MEMORY_THIEF)
              + _reference_as("REFERENCE"))
    results = _grade_with(readable_python, cls, tmp_path / "out")
    thief = [t["output"] for t in results["b_thief"]["tests"] if t["tags"] == ["loss_minimax"] and
             t["status"] != "passed"]
    # a test stopped by a problem says only "problem N": the report's top states the problem itself
    assert thief == [], f"{thief[0]}\n--- the thief's report:\n{results['b_thief'].get('output', '')}"


HIDDEN_MEMORY = {
    # socket buffers: kernel memory, in no process's smaps, held by ordinary descriptors (the
    # watchdog asks the kernel's sock_diag for every socket the uid owns)
    "sockets": '''
def loss_minimax(g, d, x_real, *, device):
    import socket, time
    held, total, chunk = [], 0, b"x" * 65536
    while total < (1 << 30):
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        a.setblocking(False)
        try:
            while True:
                total += a.send(chunk)
        except BlockingIOError:
            pass
        held.append((a, b))
    time.sleep(3)
    raise RuntimeError("held %d MB unnoticed" % (total >> 20))
''',
    # the same, the filled sockets then sent over a Unix socket and closed: held by no descriptor
    "sockets-in-flight": '''
def loss_minimax(g, d, x_real, *, device):
    import socket, time
    carrier = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    total, chunk = 0, b"x" * 65536
    while total < (1 << 30):
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        a.setblocking(False)
        try:
            while True:
                total += a.send(chunk)
        except BlockingIOError:
            pass
        socket.send_fds(carrier[0], [b"s"], [a.fileno(), b.fileno()])
        a.close()
        b.close()
    time.sleep(3)
    raise RuntimeError("held %d MB unnoticed" % (total >> 20))
''',
    # the same, each sender closed: its queued bytes now belong to the receiver's queue alone
    "sockets-sender-closed": '''
def loss_minimax(g, d, x_real, *, device):
    import socket, time
    held, total, chunk = [], 0, b"x" * 65536
    while total < (1 << 30):
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        a.setblocking(False)
        try:
            while True:
                total += a.send(chunk)
        except BlockingIOError:
            pass
        a.close()
        held.append(b)
    time.sleep(3)
    raise RuntimeError("held %d MB unnoticed" % (total >> 20))
''',
    # System V shared memory that no process has attached: in no smaps, behind no descriptor
    "sysv-shm": '''
def loss_minimax(g, d, x_real, *, device):
    import ctypes, time
    libc = ctypes.CDLL(None, use_errno=True)
    libc.shmat.restype = ctypes.c_void_p
    libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
    libc.shmdt.argtypes = [ctypes.c_void_p]
    size = 16 << 20
    for _ in range(64):
        shm = libc.shmget(0, ctypes.c_size_t(size), 0o1600)     # IPC_PRIVATE | IPC_CREAT
        addr = libc.shmat(shm, None, 0)
        ctypes.memset(addr, 1, size)
        libc.shmdt(addr)
    time.sleep(3)
    raise RuntimeError("held 1024 MB unnoticed")
''',
    # memfd files kept alive by a one-page mapping, their descriptors closed (mmap.mmap would dup one)
    "memfd-one-page": '''
def loss_minimax(g, d, x_real, *, device):
    import ctypes, os, time
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    chunk = b"x" * (1 << 20)
    for _ in range(64):
        fd = os.memfd_create("hold")
        for _ in range(15):
            os.write(fd, chunk)
        libc.mmap(None, 4096, 1, 1, fd, 0)             # PROT_READ, MAP_SHARED
        os.close(fd)
    time.sleep(3)
    raise RuntimeError("held 960 MB unnoticed")
''',
}


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps_rollup"), reason="Linux only")
@pytest.mark.parametrize("kind", sorted(HIDDEN_MEMORY))
def test_memory_the_watchdog_cannot_see_still_counts_toward_the_cap(gan_assignment, tmp_path, monkeypatch, kind):
    """Attack on the watchdog (no cgroup: Docker, Gradescope): about 1 GB held where it sums nothing
    (socket buffers, unattached System V segments, memfd files behind a one-page mapping) against a
    256 MB cap. In Gradescope's 768 MB container the kernel then kills someone: maybe the grader."""
    from conftest import reset_isolation
    from grader.sandbox.runner import Limits

    monkeypatch.setenv("DGM_NO_CGROUPS", "1")
    reset_isolation()
    try:
        a = replace(gan_assignment, probe_timeout_s=25.0)
        r = grade(a, write_gan(tmp_path / "s", replace_function(REFERENCE_GAN, "loss_minimax", HIDDEN_MEMORY[kind])),
                  limits=Limits(timeout_s=25.0, memory_mb=256))
    finally:
        monkeypatch.undo()
        reset_isolation()
    minimax = [t.output for t in r.tests if t.tags == ["loss_minimax"]]
    assert all("more than 256 MB of memory" in out for out in minimax), minimax[0]


TRAP = '''
def _trap():
    import os, time
    time.sleep(1)                             # let the neighbour's probes start
    top = "/tmp/dgm-neighbour-trap-%d" % os.getuid()
    if not os.path.exists(top):
        os.mkdir(top)
        os.chmod(top, 0o777)                  # world-writable: every other submission's watchdog walks in
        fd = os.open(top, os.O_RDONLY)
        for _ in range(2200):                 # deeper than PATH_MAX: "too deep to count" for whoever walks it
            os.mkdir("d", dir_fd=fd)
            os.chmod("d", 0o777, dir_fd=fd)
            deeper = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = deeper
        os.close(fd)
    time.sleep(15)


def loss_minimax(g, d, x_real, *, device):
    _trap()


def loss_nonsaturating(g, d, x_real, *, device):
    _trap()


def conditional_loss_nonsaturating(g, d, x_real, y_real, *, device):
    _trap()


def loss_wasserstein_gp(g, d, x_real, *, device):
    _trap()
'''


def _slow(source: str, seconds: float) -> str:
    """``source`` with every graded function taking ``seconds`` longer (honest, just slow)."""
    for name in ("loss_minimax", "loss_nonsaturating", "conditional_loss_nonsaturating", "loss_wasserstein_gp"):
        head = source.index(f"\ndef {name}(")
        body = source.index(":\n", source.index(")", head)) + 2
        source = source[:body] + f"    import time; time.sleep({seconds})\n" + source[body:]
    return source


@pytest.mark.heavy
@pytest.mark.skipif(os.geteuid() != 0, reason="a uid per submission needs root")
def test_a_tree_too_deep_to_count_in_tmp_fails_only_its_author_not_the_neighbour(gan_assignment, tmp_path,
                                                                                  without_bwrap):
    """Attack on the neighbour (no bubblewrap, --jobs 2): the disk watchdog of every submission walks
    the shared /tmp, entering every world-writable folder whoever owns it; a 0777 chain deeper than
    PATH_MAX is "too deep to count", so the honest student graded beside it fails every function
    with the scratch-disk message."""
    cls = tmp_path / "class"
    write_gan(cls / "a_trap", REFERENCE_GAN.split("\ndef ", 1)[0] + "\n" + TRAP)
    write_gan(cls / "b_honest", _slow(REFERENCE_GAN, 2))
    a = replace(gan_assignment, probe_timeout_s=20.0)
    results = {r.submission: r for r in run_grade(assignment=a, submissions=[cls], out=tmp_path / "out",
                                                   jobs=2, quiet=True)}
    honest = [t.output for t in results["b_honest"].tests if not t.passed and t.tags != ["answers"]]
    assert honest == [] and results["b_honest"].score == 45, honest[0]
    assert reserved_uid_processes() == []


@pytest.mark.skipif(os.geteuid() != 0, reason="readable copies are made by a root grader")
def test_a_package_installed_after_the_readable_copy_was_made_is_in_the_next_copy(monkeypatch):
    """`pip install` writes into site-packages, not into the prefix above it: the copy's key follows the
    package folders, so a probe uid's Python sees what the grader's sees (a stale copy lacked pytest-xdist)."""
    import shutil

    from grader.sandbox import isolation

    top = Path(f"/var/tmp/dgm-copytest-{os.getpid()}")
    try:
        prefix, site = top / "py", top / "py" / "lib" / "site-packages"
        (prefix / "bin").mkdir(parents=True)
        site.mkdir(parents=True)
        (prefix / "bin" / "python").write_text("#!/bin/sh\n")
        os.chmod(prefix / "bin" / "python", 0o755)
        os.chmod(top, 0o700)                                     # private above the prefix, as /root is
        monkeypatch.setenv("DGM_PYTHON_COPIES", str(top.with_name(top.name + "-copies")))
        py = isolation.Interpreter(str(prefix / "bin" / "python"), (str(prefix),), (str(site),), "3.x")
        first = isolation.readable_copy(py)
        assert first is not None and isolation.readable(first)
        (site / "newpkg").mkdir()
        (site / "newpkg" / "__init__.py").write_text("")
        second = isolation.readable_copy(py)
        assert second is not None and second.executable != first.executable
        copied_site = [p for p in second.paths if p.endswith("site-packages")][0]
        assert os.path.isfile(os.path.join(copied_site, "newpkg", "__init__.py"))
    finally:
        shutil.rmtree(top, ignore_errors=True)
        shutil.rmtree(top.with_name(top.name + "-copies"), ignore_errors=True)

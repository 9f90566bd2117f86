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
import zipfile

import pytest

from conftest import REFERENCE_GAN, write_gan
from grader.cli import run_grade
from grader.paths import REPO_ROOT
from grader.sandbox import bwrap_path

SOLUTION = REPO_ROOT / "solutions" / "codebase" / "gan.py"
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
    from grader.sandbox import idle_server_pids

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
    return allowed


def worker_processes() -> list[int]:
    """Processes started by this test process's workers (marked DGM_WORKER=<our pid>), except
    the idle worker servers themselves."""
    from grader.sandbox import worker_marker

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
        assert len([t for t in written["tests"] if "manual" not in t["tags"]]) == 24  # 20 code, 4 answers
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
    r = attack(prefix + REFERENCE_GAN, 0)
    assert all(says in t["output"] for t in r["tests"] if t["tags"][0] not in ("manual", "answers"))


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
    assert any(any(s in t["output"] for s in says.split("|")) for t in minimax_tests(r)), minimax_tests(r)[0]["output"]


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

def _npz(**arrays) -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def test_parent_refuses_pickles_objects_and_bombs():
    import queue

    import numpy as np

    from grader.sandbox import _outcome, _read_frames, decode_arrays

    with pytest.raises(ValueError):
        decode_arrays(_npz(x=np.array([{"evil": 1}], dtype=object)))   # would need a pickle
    with pytest.raises(ValueError, match="dtype"):
        decode_arrays(_npz(x=np.arange(3)))                            # int64, not float64
    with pytest.raises(ValueError, match="too large"):
        decode_arrays(_npz(x=np.zeros(20_000_000)), max_elements=1_000_000)  # compresses to little
    assert decode_arrays(_npz(x=np.ones(3)))["x"].dtype == np.float64
    bad = _outcome({"id": "p", "status": "ok"}, b"PK not a zip")
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
    import numpy as np

    from grader import checks

    good = {"d_loss": np.ones(1), "d_loss_shape": np.zeros(0), "d_grad": np.zeros(0), "d_grad_ok": np.zeros(1),
            "g_loss": np.ones(1), "g_loss_shape": np.zeros(0), "g_grad": np.zeros(0), "g_grad_ok": np.zeros(1)}
    args = {"function": "loss_minimax", "seed": 236}
    assert checks.validate("gan_loss", good, args) is None
    for key, value in [("d_loss_shape", np.array(3.0)), ("d_loss_shape", np.array([-1.0])),
                       ("g_grad", np.zeros(7)), ("g_grad_ok", np.array([0.5])), ("d_in0_0", np.zeros((2,) * 6))]:
        assert checks.validate("gan_loss", {**good, key: value}, args), key
    assert checks.validate("gan_loss", {k: v for k, v in good.items() if k != "g_loss"}, args)


def test_fallback_mode_without_bwrap_or_fork_still_contains_everything(attack, monkeypatch, tmp_path):
    """macOS/Windows-like mode: functions run one after another, the worker restarts after each crash."""
    from grader import sandbox

    monkeypatch.setenv("DGM_NO_BWRAP", "1")
    monkeypatch.setenv("DGM_NO_FORK", "1")
    sandbox.bwrap_path.cache_clear()
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
        sandbox.bwrap_path.cache_clear()
    assert r["score"] == 10
    outputs = {t["tags"][0]: t["output"] for t in r["tests"] if t["max_score"] > 0}
    assert "status 7" in outputs["loss_nonsaturating"]
    assert "timed out" in outputs["loss_wasserstein_gp"]
    assert "graded functions run one after another" in r["output"]
    assert "NOT isolated" in r["output"]
    import time

    time.sleep(2)  # past the moment the detached forger would have written
    assert json.loads((tmp_path / "out" / "sub" / "results.json").read_text())["score"] == 10

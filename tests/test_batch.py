"""Grading a class: a mix of good, wrong, broken and hostile submissions in one batch, in parallel,
on reused worker servers; incremental regrading; the progress display."""
import io
import json
import os
import threading
import zipfile
from dataclasses import replace

import pytest

from conftest import REFERENCE_GAN, write_gan
from grader.app import batch
from grader.app.cli import run_grade
from grader.engine.grade import grade
from grader.sandbox import runner as sandbox
from test_hostile import replace_function, worker_processes

HONEST_WITHOUT_MINIMAX = 35   # the three other reference functions (the answers file is absent)

# Each leaves something behind in its sandbox, or attacks the server that runs it.
LITTER = '''
def loss_minimax(g, d, x_real, *, device):
    import os, subprocess, tempfile
    wrote = []
    for folder in ("/tmp", tempfile.gettempdir(), os.environ.get("HOME", "."), "/dev/shm", "/scratch"):
        try:
            with open(os.path.join(folder, "left-behind.txt"), "w") as f:
                f.write("from the last student")
            wrote.append(folder)
        except OSError:
            pass
    subprocess.Popen(["sleep", "77.5"], start_new_session=True)
    raise RuntimeError("littered in " + " ".join(wrote))
'''
KILL_SERVER = '''
def loss_minimax(g, d, x_real, *, device):
    import os, signal
    os.kill(os.getppid(), signal.SIGKILL)
    raise RuntimeError("the server survived")
'''
CHECK_CLEAN = '''
def loss_minimax(g, d, x_real, *, device):
    import os, tempfile
    for folder in ("/tmp", tempfile.gettempdir(), os.environ.get("HOME", "."), "/dev/shm", "/scratch"):
        if os.path.exists(os.path.join(folder, "left-behind.txt")):
            raise RuntimeError("found the last student's file in " + folder)
    for root, _, files in os.walk("/scratch"):
        if "left-behind.txt" in files:
            raise RuntimeError("found the last student's file in " + root)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if b"77.5" in open(f"/proc/{pid}/cmdline", "rb").read():
                raise RuntimeError("the last student's process is still running")
        except OSError:
            pass
    return REFERENCE(g, d, x_real, device=device)
'''


def _reference_minimax() -> str:
    start = REFERENCE_GAN.index("\ndef loss_minimax(")
    end = REFERENCE_GAN.find("\ndef ", start + 1)
    body = REFERENCE_GAN[start:end if end != -1 else None]
    return body.replace("def loss_minimax(", "def REFERENCE(")


def _with_minimax(source: str) -> str:
    return replace_function(REFERENCE_GAN, "loss_minimax", source) + "\n" + _reference_minimax()


def _zip(folder, dest):
    with zipfile.ZipFile(dest, "w") as zf:
        for f in folder.rglob("*"):
            if f.is_file():
                zf.write(f, f.relative_to(folder).as_posix())
    return dest


@pytest.mark.heavy
def test_a_mixed_class_grades_in_parallel_and_every_student_gets_their_own_score(gan_assignment, tmp_path):
    a = replace(gan_assignment, probe_timeout_s=4.0)
    cls = tmp_path / "class"
    write_gan(cls / "good1", REFERENCE_GAN)
    _zip(write_gan(tmp_path / "z" / "good2", REFERENCE_GAN), cls / "good2.zip")
    write_gan(cls / "wrong", REFERENCE_GAN.replace("F.logsigmoid(-d_fake)", "F.logsigmoid(d_fake)", 1))
    write_gan(cls / "syntax", "def broken(:\n")
    (cls / "corrupt.zip").write_bytes(b"PK\x03\x04 but not really")
    write_gan(cls / "spin", replace_function(REFERENCE_GAN, "loss_minimax",
                                             "def loss_minimax(g, d, x_real, *, device):\n    while True:\n        pass\n"))
    write_gan(cls / "litter", replace_function(REFERENCE_GAN, "loss_minimax", LITTER))
    write_gan(cls / "killer", replace_function(REFERENCE_GAN, "loss_minimax", KILL_SERVER))
    for k in range(3):  # graded after the hostile ones on the same servers: nothing may carry over
        write_gan(cls / f"zz_after{k}", _with_minimax(CHECK_CLEAN))
    out = tmp_path / "out"
    log = io.StringIO()
    import contextlib

    with contextlib.redirect_stderr(log):
        results = run_grade(assignment=a, submissions=[cls], out=out, jobs=2)
    by_name = {r.submission: r for r in results}
    assert len(results) == 11
    assert by_name["good1"].score == by_name["good2"].score == 45
    assert 0 < by_name["wrong"].score < 45
    assert by_name["syntax"].score == 0 and by_name["syntax"].status == "error"
    assert by_name["corrupt"].status == "invalid"
    assert by_name["spin"].score == HONEST_WITHOUT_MINIMAX and by_name["spin"].status == "timeout"
    assert by_name["litter"].score == HONEST_WITHOUT_MINIMAX
    assert by_name["killer"].score == HONEST_WITHOUT_MINIMAX
    if sandbox.bwrap_path():  # the only place a probe can write is its own scratch folder, removed after
        littered = [t.output for t in by_name["litter"].tests if t.tags == ["loss_minimax"]][0]
        assert "littered in /scratch/" in littered and "/tmp" not in littered
    for k in range(3):
        r = by_name[f"zz_after{k}"]
        minimax = [t.output for t in r.tests if t.tags == ["loss_minimax"] and not t.passed]
        assert r.score == 45, minimax
    rows = (out / "grades.csv").read_text().splitlines()
    assert rows[0] == ("submission,loss_nonsaturating,conditional_loss_nonsaturating,loss_wasserstein_gp,"
                       "loss_minimax,answers,total,max,status")
    assert "good1,10,10,15,10,0,45,48,ok" in rows
    assert any(r.startswith("spin,") and r.endswith(",timeout") for r in rows)
    assert (out / "summary.png").is_file() and "11 submissions" in (out / "summary.md").read_text()
    lines = log.getvalue().splitlines()
    assert len([line for line in lines if line.startswith("[")]) == 11 and "ETA" in log.getvalue()
    assert worker_processes() == [], "a probe process outlived its submission"


def test_unchanged_submissions_are_not_graded_again(gan_assignment, tmp_path, monkeypatch):
    cls = tmp_path / "class"
    write_gan(cls / "alice", REFERENCE_GAN)
    write_gan(cls / "bob", REFERENCE_GAN.replace("def loss_minimax(", "def loss_minmax("))
    out = tmp_path / "out"
    first = {r.submission: r.score for r in run_grade(assignment=gan_assignment, submissions=[cls], out=out,
                                                       quiet=True)}
    graded = []
    real_grade = batch.grade

    def counting(assignment, path, **kw):
        graded.append(path.name)
        return real_grade(assignment, path, **kw)

    monkeypatch.setattr(batch, "grade", counting)
    again = {r.submission: r.score for r in run_grade(assignment=gan_assignment, submissions=[cls], out=out,
                                                       quiet=True)}
    assert graded == [] and again == first          # nothing changed: the stored results stand
    write_gan(cls / "bob", REFERENCE_GAN)           # bob resubmits
    again = {r.submission: r.score for r in run_grade(assignment=gan_assignment, submissions=[cls], out=out,
                                                       quiet=True)}
    assert graded == ["bob"] and again == {"alice": 45, "bob": 45}
    assert json.loads((out / "bob" / "results.json").read_text())["score"] == 45
    graded.clear()
    run_grade(assignment=gan_assignment, submissions=[cls], out=out, quiet=True, force=True)
    assert sorted(graded) == ["alice", "bob"]        # --force
    graded.clear()
    run_grade(assignment=replace(gan_assignment, probe_timeout_s=7.0), submissions=[cls], out=out, quiet=True)
    assert sorted(graded) == ["alice", "bob"]        # another grader configuration
    graded.clear()
    (out / "alice" / batch.CACHE_FILE).write_text("{not json")
    run_grade(assignment=replace(gan_assignment, probe_timeout_s=7.0), submissions=[cls], out=out, quiet=True)
    assert graded == ["alice"]                       # a damaged cache entry means: grade again


def test_the_grader_fingerprint_follows_code_keys_and_settings(gan_assignment):
    f = batch.grader_fingerprint(gan_assignment)
    assert f == batch.grader_fingerprint(gan_assignment)
    assert f != batch.grader_fingerprint(replace(gan_assignment, probe_timeout_s=99.0))
    assert f != batch.grader_fingerprint(gan_assignment, public_only=True)


def test_progress_bar_on_a_terminal_and_lines_in_a_log(gan_assignment):
    from grader.engine.results import GradeResult

    class Tty(io.StringIO):
        def isatty(self):
            return True

    r = GradeResult("gan", "alice", "", [], "ok", 0.1)
    tty = Tty()
    p = batch.Progress(3, stream=tty)
    for cached in (False, True, False):
        p.update(r, cached)
    shown = tty.getvalue()
    assert shown.count("\r[") == 3 and "[##########" in shown and "3/3" in shown and shown.endswith("\n")
    assert "unchanged, not regraded" in shown and "ETA" in shown
    log = io.StringIO()
    p = batch.Progress(2, stream=log)
    p.update(r, False)
    p.update(r, False)
    assert log.getvalue().splitlines()[0].startswith("[1/2] alice: 0/0 (ok), ETA")
    assert "\r" not in log.getvalue()


def test_one_server_grades_many_submissions_without_a_new_torch_import(gan_assignment, tmp_path):
    sandbox.shutdown_pool()
    sub = write_gan(tmp_path / "s", REFERENCE_GAN)
    grade(gan_assignment, sub)
    servers = sandbox.idle_server_pids()
    assert len(servers) == 1
    for _ in range(3):
        assert grade(gan_assignment, sub).score == 45
    assert sandbox.idle_server_pids() == servers    # the same process served them all
    sandbox.shutdown_pool()
    assert sandbox.idle_server_pids() == []
    assert not any(os.path.exists(f"/proc/{pid}") and open(f"/proc/{pid}/stat").read().split()[2] != "Z"
                   for pid in servers)


def test_a_grader_fault_on_one_submission_does_not_stop_the_batch(gan_assignment, tmp_path, monkeypatch):
    cls = tmp_path / "class"
    for name in ("alice", "bob", "carol"):
        write_gan(cls / name, REFERENCE_GAN)
    real_grade = batch.grade

    def flaky(assignment, path, **kw):
        if path.name == "bob":
            raise RuntimeError("disk on fire")
        return real_grade(assignment, path, **kw)

    monkeypatch.setattr(batch, "grade", flaky)
    out = tmp_path / "out"
    results = {r.submission: r for r in run_grade(assignment=gan_assignment, submissions=[cls], out=out,
                                                   jobs=2, quiet=True)}
    assert results["alice"].score == results["carol"].score == 45
    assert results["bob"].status == "error" and "disk on fire" in results["bob"].grader_errors[0]
    bob = json.loads((out / "bob" / "results.json").read_text())
    assert bob["score"] == 0 and "the grader failed on this submission" in bob["output"]
    assert "bob,0,0,0,0,0,0,48,error" in (out / "grades.csv").read_text().splitlines()
    assert not (out / "bob" / batch.CACHE_FILE).exists()   # a grader fault is never cached


def test_a_gradescope_export_is_reported_by_submitter(gan_assignment, tmp_path):
    export = tmp_path / "assignment_42_export"
    write_gan(export / "submission_1001", REFERENCE_GAN)
    write_gan(export / "submission_1002", "def broken(:\n")
    write_gan(export / "submission_1003", REFERENCE_GAN)   # not in the metadata: keeps its folder name
    (export / "submission_metadata.yml").write_text(
        "submission_1001:\n"
        "  :submitters:\n"
        "  - :name: Alice Liddell\n"
        "    :sid: '17'\n"
        "    :email: alice@example.edu\n"
        "  :created_at: !ruby/object:DateTime 2026-11-20 10:00:00.000000000 -08:00\n"
        "submission_1002:\n"
        "  :submitters:\n"
        "  - :name: Bob\n"
        "  - :sid: '19'\n")
    out = tmp_path / "out"
    results = {r.submission: r.score for r in run_grade(assignment=gan_assignment, submissions=[export], out=out,
                                                         quiet=True)}
    assert results == {"alice@example.edu": 45, "Bob_19": 0, "submission_1003": 45}
    assert (out / "alice@example.edu" / "results.json").is_file()


def test_a_file_name_that_is_not_utf8_neither_stops_the_batch_nor_its_cache(tmp_path, monkeypatch):
    """Names from an upload are bytes: hashing them for the cache, copying them and grading must not care."""
    from grader.app.cli import main

    cls = tmp_path / "class"
    write_gan(cls / "alice", REFERENCE_GAN)
    bob = os.fsencode(write_gan(cls / "bob", REFERENCE_GAN))
    for rel in (b"notes-\xff.txt", b"out_\xfe/fake_1.png", b"out/fake_\xe9.png"):   # the last two are submitted
        os.makedirs(os.path.dirname(bob + b"/" + rel), exist_ok=True)
        with open(bob + b"/" + rel, "wb") as f:
            f.write(b"\x89PNG not really")
    out = tmp_path / "out"
    args = ["grade", "--assignment", "gan", "--out", str(out), str(cls)]
    assert main(args) == 0
    rows = (out / "grades.csv").read_text().splitlines()
    assert "alice,10,10,15,10,0,45,48,ok" in rows and "bob,10,10,15,10,0,45,48,ok" in rows
    graded = []
    real_grade = batch.grade

    def counting(assignment, path, **kw):
        graded.append(path.name)
        return real_grade(assignment, path, **kw)

    monkeypatch.setattr(batch, "grade", counting)
    assert main(args) == 0
    assert graded == []                                   # the second run took both from the cache
    assert "bob,10,10,15,10,0,45,48,ok" in (out / "grades.csv").read_text().splitlines()
    assert json.loads((out / "bob" / "results.json").read_text())["score"] == 45


@pytest.mark.heavy
def test_a_function_that_timed_out_beside_others_is_graded_again_alone(gan_assignment, tmp_path, monkeypatch):
    """With --jobs 2 a timeout may only mean a neighbour took the CPU: the submission is graded again
    with nothing beside it and that grade stands; with --jobs 1 no other submission's code ran beside
    it (one probe slot, though the next submission is loaded meanwhile), so it is graded once."""
    cls = tmp_path / "class"
    write_gan(cls / "alice", REFERENCE_GAN)
    write_gan(cls / "bob", REFERENCE_GAN)
    write_gan(cls / "slow", replace_function(REFERENCE_GAN, "loss_minimax", (
        "def loss_minimax(g, d, x_real, *, device):\n    import time\n    time.sleep(60)\n")))
    calls, active, lock = [], [0], threading.Lock()
    real_grade = batch.grade

    def counting(assignment, path, **kw):
        with lock:
            active[0] += 1
            calls.append((path.name, active[0]))
        try:
            return real_grade(assignment, path, **kw)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(batch, "grade", counting)
    a = replace(gan_assignment, probe_timeout_s=2.0)
    results = {r.submission: r for r in run_grade(assignment=a, submissions=[cls], out=tmp_path / "out",
                                                   jobs=2, quiet=True)}
    assert sorted(name for name, _ in calls) == ["alice", "bob", "slow", "slow"]
    assert calls[-1] == ("slow", 1)                 # the second time, nothing else was being graded
    assert results["slow"].timeouts and results["alice"].timeouts == []
    minimax = [t for t in results["slow"].tests if t.tags == ["loss_minimax"]]
    assert minimax and all(not t.passed and "timed out" in t.output for t in minimax)
    assert results["alice"].score == results["bob"].score == 45 and results["slow"].score == 35
    assert json.loads((tmp_path / "out" / "slow" / "results.json").read_text())["score"] == 35
    calls.clear()
    run_grade(assignment=a, submissions=[cls], out=tmp_path / "out1", jobs=1, quiet=True)
    assert sorted(name for name, _ in calls) == ["alice", "bob", "slow"]

"""The grader command: grading always writes results.json and exits 0; usage errors exit 2."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import REFERENCE_GAN, write_gan
from grader.app.cli import main
from grader.engine.assignment import load_assignment


def grader(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "grader", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def test_grade_folder_of_submissions(tmp_path):
    subs = tmp_path / "subs"
    write_gan(subs / "alice", REFERENCE_GAN)
    write_gan(subs / "bob", "def broken(:\n")                          # syntax error
    write_gan(subs / "carol", REFERENCE_GAN.replace("def loss_minimax(", "def loss_minmax("))  # misnamed
    (subs / "dave.zip").write_bytes(b"not a zip at all")                # corrupt zip
    out = tmp_path / "out"
    proc = grader("grade", "--assignment", "gan", "--out", out, "--jobs", "2", "--zip", subs)
    assert proc.returncode == 0, proc.stderr
    results = {p.parent.name: json.loads(p.read_text()) for p in out.glob("*/results.json")}
    assert set(results) == {"alice", "bob", "carol", "dave"}
    assert results["alice"]["score"] == 45
    assert results["bob"]["score"] == 0
    bob = [t for t in results["bob"]["tests"] if t["tags"][0] not in ("manual", "answers")]
    assert results["bob"]["output"].count("SyntaxError") == 1   # stated once, first; each test points to it
    assert all("problem 1 at the top" in t["output"] and "SyntaxError" not in t["output"] for t in bob)
    assert results["carol"]["score"] == 35
    minimax = [t for t in results["carol"]["tests"] if t["tags"] == ["loss_minimax"]]
    assert "defines no function named 'loss_minimax'" in results["carol"]["output"]
    assert all("problem 1 at the top" in t["output"] for t in minimax)
    assert results["dave"]["score"] == 0 and "not a readable zip" in results["dave"]["output"]
    for r in results.values():
        assert all(t["tags"] for t in r["tests"])
        assert {"score", "execution_time", "output", "tests"} <= set(r)
        for t in r["tests"]:
            assert {"name", "score", "max_score", "status", "output", "visibility", "tags"} <= set(t)
    rows = (out / "grades.csv").read_text().splitlines()
    assert rows[0].startswith("submission,") and rows[0].endswith(",total,max,status")
    assert len(rows) == 5
    assert any(r.startswith("dave,") and r.endswith(",invalid") for r in rows)
    assert (out / "alice" / "feedback.md").is_file()
    summary = (out / "summary.md").read_text()
    assert "# Summary: 4 submissions" in summary and "invalid 1" in summary
    assert "| loss_minimax: d_loss value and gradient | 1 / 4 | 25% |" in summary   # only alice's is right
    assert (out / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import zipfile
    names = set(zipfile.ZipFile(tmp_path / "out.zip").namelist())
    assert {"grades.csv", "summary.md", "summary.png", "alice/results.json", "dave/feedback.md"} <= names


def test_usage_errors_exit_2(tmp_path, capsys):
    assert main(["grade", "--assignment", "nope", str(tmp_path)]) == 2
    assert "unknown assignment 'nope'" in capsys.readouterr().err
    assert main(["grade", "--assignment", "gan", str(tmp_path / "missing")]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["grade"])
    assert exc.value.code == 2


def test_check_in_starter_folder_guesses_the_assignment(tmp_path):
    from grader.engine.paths import STARTER_DIR

    proc = grader("check", cwd=STARTER_DIR / "gan")
    assert proc.returncode == 1, proc.stderr           # checks failed: exit 1, like pytest
    assert "grader check: gan" in proc.stdout
    assert "not implemented" in proc.stdout
    assert "1/23 public checks passed" in proc.stdout   # only the blank answers file is well formed
    assert "PASS  answers: gan_answers.yaml is well formed" in proc.stdout
    assert "note: not answered yet: 4.2a, 4.2b, 4.4a" in proc.stdout
    assert "isolation" not in proc.stderr   # a sandbox as strong as a student expects goes unsaid
    assert "When you submit: 48 of 140 points graded automatically, 92 more by staff" in proc.stdout


def test_check_names_the_isolation_only_when_it_is_weaker_than_a_student_expects(monkeypatch):
    """A student expects their code to run as themselves, capped and timed: only less than that is said."""
    from grader.app import cli
    from grader.sandbox import isolation

    strong = isolation.Plan(bwrap="/usr/bin/bwrap", fork=True, own_uid=True, python=isolation.interpreter())
    as_you = isolation.Plan(bwrap=None, fork=True, own_uid=False, python=isolation.interpreter())
    monkeypatch.setattr(isolation, "is_root", lambda: False)
    assert cli.student_isolation(strong) is None and cli.student_isolation(as_you) is None
    assert len(as_you.summary()) > 100   # what an instructor reads, and a student need not
    monkeypatch.setattr(isolation, "is_root", lambda: True)
    said = cli.student_isolation(as_you)
    assert said and "root" in said and len(said) < 50


def test_the_demo_says_why_its_totals_are_not_the_statement_s():
    from grader.app.cli import demo_totals

    assert demo_totals(load_assignment("gan")) == ("Scores are out of the 48 points graded automatically; the "
                                                   "statement's 140 also count 92 graded by course staff.")
    assert "out of the 35 points" in demo_totals(load_assignment("gan_split"))


def test_check_takes_the_student_file_itself_with_its_answers_next_to_it(tmp_path):
    """The README's own commands: `grader check --assignment vae vae_wake_sleep.ipynb`, and a gan.py path."""
    from grader.engine.paths import SOLUTIONS_DIR, STARTER_DIR

    work = tmp_path / "hw"
    shutil.copytree(STARTER_DIR, work)
    shutil.copyfile(SOLUTIONS_DIR / "vae" / "vae_wake_sleep.ipynb", work / "vae" / "vae_wake_sleep.ipynb")
    proc = grader("check", "--assignment", "vae", "vae_wake_sleep.ipynb", cwd=work / "vae")
    assert "is missing" not in proc.stdout and "note: not answered yet: 1.4a" in proc.stdout, proc.stdout
    assert proc.returncode == 0, proc.stdout
    shutil.copyfile(SOLUTIONS_DIR / "gan" / "codebase" / "gan.py", work / "gan" / "codebase" / "gan.py")
    proc = grader("check", "codebase/gan.py", cwd=work / "gan")   # the assignment is found from the file
    assert "grader check: gan (" in proc.stdout and "23/23 public checks passed" in proc.stdout, proc.stdout


def test_usage_errors_are_one_line_and_fast(tmp_path):
    (tmp_path / "afile").write_text("x")
    for args, says in ((["grade", "--assignment", "gan", "--out", str(tmp_path / "afile"), str(tmp_path)],
                        "is a file"),
                       (["check", str(tmp_path / "nowhere")], "does not exist"),
                       (["check", str(tmp_path)], "cannot tell which assignment"),
                       (["grade", "--assignment", "nope", str(tmp_path)], "unknown assignment 'nope'")):
        proc = grader(*args, cwd=tmp_path)
        assert proc.returncode == 2 and says in proc.stderr and "Traceback" not in proc.stderr, (args, proc.stderr)
    import subprocess
    import sys

    probe = "import sys; import grader.app.cli as c; c.main(['--help']) if False else None; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout
    assert out.strip() == "False"   # the CLI module itself never imports torch


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run(f"{sys.executable} -m grader --help | head -1", shell=True, capture_output=True,
                          text=True, timeout=60)
    assert "Traceback" not in proc.stderr and proc.stdout.startswith("usage: grader")


def test_an_import_error_is_stated_once_first_and_the_totals_name_the_staff_points(tmp_path, capsys):
    """One problem that stops every test is stated once, before the tests, with the student's line; each
    test points to it; the total says what is graded automatically and what by staff."""
    from grader.app.report import feedback_md
    from grader.engine.assignment import load_assignment
    from grader.engine.grade import grade

    sub = write_gan(tmp_path / "sub", "import torch\nfrom codebase.helpers import sample_z\n" + REFERENCE_GAN)
    md = feedback_md(grade(load_assignment("gan"), sub))
    assert md.count("ModuleNotFoundError") == 1 and "line 2: from codebase.helpers import sample_z" in md
    assert md.index("ModuleNotFoundError") < md.index("| # | test |")
    assert "**0 of 48 points graded automatically; 92 more points graded by course staff.**" in md
    assert "7.2 Creative adversarial networks: multi-class cross-entropy (bonus) (10 bonus)" in md
    assert main(["check", "--assignment", "gan", str(sub)]) == 1
    out = capsys.readouterr().out
    assert out.count("ModuleNotFoundError") == 1 and out.index("ModuleNotFoundError") < out.index("FAIL")
    assert out.count("problem 1 at the top") == 1
    assert "When you submit: 48 of 140 points graded automatically, 92 more by staff (and a 10-point bonus)." \
        in out.splitlines()


def test_check_wraps_long_lines_at_word_boundaries_keeping_the_indentation(capsys):
    from grader.app.cli import print_wrapped

    words = [f"word{i:02d}" for i in range(40)]
    print_wrapped("  " + " ".join(words), "        ", "          ", width=60)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) > 3 and all(len(line) <= 60 for line in lines)
    assert lines[0].startswith("          word00") and all(line.startswith("          word") for line in lines)
    assert " ".join(" ".join(lines).split()) == " ".join(words)   # no word cut


def test_help_and_usage_errors_are_printed_once():
    """The entry point looks at the command line before main() does (to start clean): silently."""
    for argv in (["--help"], ["grade"], ["check", "--help"]):
        proc = subprocess.run([sys.executable, "-c", "from grader.app.cli import entry; entry()", *argv],
                              capture_output=True, text=True, timeout=120)
        assert (proc.stdout + proc.stderr).count("usage: grader") == 1, (argv, proc.stdout, proc.stderr)


def test_one_submission_gets_its_reports_without_a_class_plot(tmp_path, capsys):
    """summary.png shows a class's distribution: one submission does not pay for matplotlib (most of a
    single cold grade's time after torch), and a plot left in the folder by an earlier class goes."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.png").write_bytes(b"an earlier class's plot")
    assert main(["grade", "--assignment", "gan", "--out", str(out),
                 str(write_gan(tmp_path / "alice", REFERENCE_GAN))]) == 0
    said = capsys.readouterr().out
    assert "summary.md" in said and "summary.png" not in said
    assert (out / "alice" / "feedback.md").is_file() and (out / "summary.md").is_file()
    assert not (out / "summary.png").exists()


def test_the_grader_s_own_blas_has_one_thread_before_numpy_loads():
    """numpy's thread pool reads its limits once, at load: the CLI must set them before any import
    of its loads numpy, or idle BLAS threads spin against the worker servers (a class took 30 %
    longer when an import moved up)."""
    probe = (
        "import os, sys\n"
        "seen = {}\n"
        "class Watch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'numpy' and not seen:\n"
        "            seen.update((v, os.environ.get(v)) for v in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'))\n"
        "sys.meta_path.insert(0, Watch())\n"
        "import grader.app.cli\n"
        "import numpy\n"
        "print(sorted(seen.items()))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True).stdout
    assert out.strip() == str([("MKL_NUM_THREADS", "1"), ("OMP_NUM_THREADS", "1"), ("OPENBLAS_NUM_THREADS", "1")])

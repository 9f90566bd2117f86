"""grader release: the student bundle has the starter, statements and public checks, never a secret."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from grader.paths import REPO_ROOT
from grader.release import LeakError, build, scan, secrets

SOLUTION_LINE = "d_loss = -F.logsigmoid(d_real).mean() - F.logsigmoid(-d_fake).mean()"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("release") / "bundle"
    files = build(out)
    return out, files


def test_the_bundle_has_what_students_need_and_nothing_hidden(bundle):
    out, files = bundle
    for rel in ("README.md", "pyproject.toml", "starter/codebase/gan.py", "starter/gan_1d.ipynb",
                "starter/vae_wake_sleep.ipynb", "starter/make_submission.sh", "starter/gan_answers.yaml",
                "statements/gan.md", "statements/gan1d.md", "statements/vae.md", "statements/gan_split.md",
                "grader/data/assignments/gan/checks.py", "grader/data/assignments/gan/probes.py",
                "grader/data/assignments/gan/fixtures.py", "grader/worker/main.py",
                "grader/data/assignments/gan/assignment.yaml", "grader/data/starter/codebase/utils.py",
                "starter/gan_split/codebase/gan.py", "starter/gan_split/codebase/network.py",
                "starter/gan_split/make_submission.sh", "grader/data/assignments/gan_split/assignment.yaml"):
        assert rel in files, rel
    assert not [f for f in files if f.endswith("hidden.py") or f.startswith("solutions/")
                or "/examples/" in f or f.endswith(("release.py", "autograder.py"))]
    readme = (out / "README.md").read_text()
    assert "grader check --assignment gan_split" in readme and "python run_gan.py --loss_type conditional" in readme
    assert SOLUTION_LINE in (REPO_ROOT / "solutions" / "codebase" / "gan.py").read_text()   # the probe is real
    assert all(SOLUTION_LINE not in (out / f).read_text(errors="replace") for f in files)
    assert scan(out) == []
    assert "NotImplementedError" in (out / "starter" / "codebase" / "gan.py").read_text()


def test_the_secret_table_covers_solution_blocks_answer_keys_and_hidden_checks():
    table = secrets()
    sources = {s.source.split(" line ")[0] for s in table.values()}
    assert {"solutions/codebase/gan.py", "solutions/gan_1d.ipynb", "solutions/vae_wake_sleep.ipynb",
            "solutions/gan_answers.yaml", "solutions/vae_answers.yaml", "solutions/gan_split/codebase/gan.py",
            "assignments/gan/hidden.py", "assignments/vae/hidden.py"} <= sources
    assert SOLUTION_LINE in table
    assert "import torch" not in table and "return d_loss, g_loss" not in table   # public lines are not secrets


def _fake_repo(tmp_path):
    repo = tmp_path / "repo"
    for folder in ("grader", "starter", "solutions"):
        shutil.copytree(REPO_ROOT / folder, repo / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO_ROOT / "assignments", repo / "assignments", ignore=shutil.ignore_patterns("examples"))
    shutil.copyfile(REPO_ROOT / "pyproject.toml", repo / "pyproject.toml")
    assert build(tmp_path / "clean", repo_root=repo)   # the unplanted copy releases fine
    return repo


def _plant_in_notebook(path, line):
    nb = json.loads(path.read_text())
    cell = next(c for c in nb["cells"] if c["cell_type"] == "code")
    cell["source"] = list(cell["source"]) + ["\n", line + "\n"]
    path.write_text(json.dumps(nb))


@pytest.mark.parametrize("plant,names", [
    (lambda r: (r / "starter/codebase/gan.py").write_text((r / "starter/codebase/gan.py").read_text()
                                                         + "\n    " + SOLUTION_LINE + "\n"),
     ["starter/codebase/gan.py", "solutions/codebase/gan.py line"]),
    (lambda r: (r / "assignments/gan/README.md").write_text((r / "assignments/gan/README.md").read_text()
                                                           + "\nHint: `" + SOLUTION_LINE + "`\n"),
     ["statements/gan.md", "solutions/codebase/gan.py line"]),
    (lambda r: shutil.copyfile(r / "solutions/gan_1d.ipynb", r / "starter/gan_1d_filled.ipynb"),
     ["starter/gan_1d_filled.ipynb", "a copy of solutions/gan_1d.ipynb"]),
    (lambda r: _plant_in_notebook(r / "starter/vae_wake_sleep.ipynb", next(
        s.text for s in secrets(r).values() if s.source.startswith("solutions/vae_wake_sleep.ipynb"))),
     ["starter/vae_wake_sleep.ipynb", "solutions/vae_wake_sleep.ipynb line"]),
    (lambda r: (r / "starter/gan_answers.yaml").write_text(
        (r / "solutions/gan_answers.yaml").read_text()), ["starter/gan_answers.yaml"]),
    (lambda r: (r / "assignments/gan/checks.py").write_text((r / "assignments/gan/checks.py").read_text() + "\n"
                                                           + (r / "assignments/gan/hidden.py").read_text()),
     ["grader/data/assignments/gan/checks.py: declares 'gan.d_loss', a hidden check of assignments/gan/hidden.py"]),
    (lambda r: (r / "starter/solutions").mkdir() or shutil.copyfile(r / "solutions/codebase/utils.py",
                                                                   r / "starter/solutions/utils.py"),
     ["starter/solutions/utils.py: inside a solutions/ folder"]),
], ids=["solution-line-in-starter", "solution-line-in-statement", "solution-notebook-copied",
        "solution-line-in-notebook-cell", "answer-key", "hidden-check-renamed", "solutions-folder"])
def test_a_planted_secret_stops_the_release_and_is_named(tmp_path, plant, names):
    repo = _fake_repo(tmp_path)
    plant(repo)
    out = tmp_path / "bundle"
    with pytest.raises(LeakError) as err:
        build(out, repo_root=repo)
    for name in names:
        assert name in str(err.value), str(err.value)
    assert not out.exists()   # nothing was written


def test_release_cli_refuses_a_non_empty_folder(tmp_path, capsys):
    from grader.cli import main

    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "keep.txt").write_text("mine")
    assert main(["release", "--out", str(tmp_path / "b")]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["release", "--out", str(tmp_path / "ok"), "--assignment", "gan"]) == 0
    assert (tmp_path / "ok" / "statements" / "gan.md").is_file()
    assert not (tmp_path / "ok" / "statements" / "vae.md").exists()


def test_grader_check_works_from_an_installed_bundle(bundle, tmp_path):
    out, _ = bundle
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}   # only what the venv installed
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps",
                           "--no-build-isolation", "--no-index", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    work = tmp_path / "work"
    shutil.copytree(out / "starter", work)
    shutil.rmtree(out / "grader")  # the installed copy must stand alone, not lean on the bundle folder

    def check(*args):
        return subprocess.run([str(venv / "bin" / "grader"), "check", *args], cwd=work, capture_output=True,
                              text=True, timeout=300, env=env)

    first = check()
    assert first.returncode == 0, first.stderr
    assert "1/13 public checks passed" in first.stdout   # the untouched starter: only the answers file parses
    shutil.copyfile(REPO_ROOT / "solutions" / "codebase" / "gan.py", work / "codebase" / "gan.py")
    second = check()
    assert "13/13 public checks passed" in second.stdout, second.stdout
    graded = subprocess.run([str(venv / "bin" / "grader"), "grade", "--assignment", "gan", "."], cwd=work,
                            capture_output=True, text=True, env=env)
    assert graded.returncode == 2 and "public checks only" in graded.stderr
    where = subprocess.run([str(py), "-c", "import grader.paths as p; print(p.IS_BUNDLE, p.SOLUTIONS_DIR.exists())"],
                           capture_output=True, text=True, cwd=tmp_path, env=env)
    assert where.stdout.split() == ["True", "False"]

"""grader release: the student bundle has the starter, statements and public checks, never a secret."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from grader.builders.release import LeakError, build, scan, secrets
from grader.engine.paths import REPO_ROOT

SOLUTION_LINE = "d_loss = -F.logsigmoid(d_real).mean() - F.logsigmoid(-d_fake).mean()"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("release") / "bundle"
    files = build(out)
    return out, files


def test_the_bundle_has_what_students_need_and_nothing_hidden(bundle):
    out, files = bundle
    for rel in ("README.md", "pyproject.toml", "setup.py", "gan/codebase/gan.py", "gan1d/gan_1d.ipynb",
                "vae/vae_wake_sleep.ipynb", "gan/make_submission.sh", "gan/gan_answers.yaml",
                "gan/README.md", "gan1d/README.md", "vae/README.md", "gan_split/README.md",
                "grader/data/assignments/gan/checks.py", "grader/data/assignments/gan/probes.py",
                "grader/data/assignments/gan/fixtures.py", "grader/sandbox/worker/main.py",
                "grader/data/assignments/gan/assignment.yaml", "grader/data/starter/gan/codebase/utils.py",
                "gan_split/codebase/gan.py", "gan_split/codebase/network.py",
                "gan_split/make_submission.sh", "grader/data/assignments/gan_split/assignment.yaml"):
        assert rel in files, rel
    tops = {f.split("/")[0] for f in files}
    assert tops == {"README.md", "pyproject.toml", "setup.py", "grader", "gan", "gan_split", "gan1d", "vae"}, tops
    for name in ("gan", "gan_split", "gan1d", "vae"):   # each folder as starter/ has it, whole
        assert {f.split("/", 1)[1] for f in files if f.startswith(name + "/")} == {
            p.relative_to(REPO_ROOT / "starter" / name).as_posix()
            for p in (REPO_ROOT / "starter" / name).rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert not [f for f in files if f.endswith("hidden.py") or f.startswith("solutions/")
                or "/examples/" in f or f.endswith(("release.py", "autograder.py"))]
    readme = (out / "README.md").read_text()
    assert "cd gan_split\ngrader check" in readme and "python run_gan.py --loss_type conditional" in readme
    assert SOLUTION_LINE in (REPO_ROOT / "solutions" / "gan" / "codebase" / "gan.py").read_text()   # the probe is real
    assert all(SOLUTION_LINE not in (out / f).read_text(errors="replace") for f in files)
    assert scan(out) == []
    assert "NotImplementedError" in (out / "gan" / "codebase" / "gan.py").read_text()


def test_the_secret_table_covers_solution_blocks_answer_keys_and_hidden_checks():
    table = secrets()
    sources = {s.source.split(" line ")[0] for s in table.values()}
    assert {"solutions/gan/codebase/gan.py", "solutions/gan1d/gan_1d.ipynb", "solutions/vae/vae_wake_sleep.ipynb",
            "solutions/gan/gan_answers.yaml", "solutions/vae/vae_answers.yaml", "solutions/gan_split/codebase/gan.py",
            "assignments/gan/hidden.py", "assignments/vae/hidden.py"} <= sources
    assert SOLUTION_LINE in table
    assert "import torch" not in table and "return d_loss, g_loss" not in table   # public lines are not secrets


def _fake_repo(tmp_path):
    repo = tmp_path / "repo"
    for folder in ("grader", "starter", "solutions"):
        shutil.copytree(REPO_ROOT / folder, repo / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO_ROOT / "assignments", repo / "assignments", ignore=shutil.ignore_patterns("examples"))
    for f in ("pyproject.toml", "make_submission.sh"):
        shutil.copyfile(REPO_ROOT / f, repo / f)
    assert build(tmp_path / "clean", repo_root=repo)   # the unplanted copy releases fine
    return repo


def _plant_in_notebook(path, line):
    nb = json.loads(path.read_text())
    cell = next(c for c in nb["cells"] if c["cell_type"] == "code")
    cell["source"] = list(cell["source"]) + ["\n", line + "\n"]
    path.write_text(json.dumps(nb))


@pytest.mark.parametrize("plant,names", [
    (lambda r: (r / "starter/gan/codebase/gan.py").write_text((r / "starter/gan/codebase/gan.py").read_text()
                                                             + "\n    " + SOLUTION_LINE + "\n"),
     ["gan/codebase/gan.py", "solutions/gan/codebase/gan.py line"]),
    (lambda r: (r / "starter/gan/README.md").write_text((r / "starter/gan/README.md").read_text()
                                                       + "\nHint: `" + SOLUTION_LINE + "`\n"),
     ["gan/README.md", "solutions/gan/codebase/gan.py line"]),
    (lambda r: shutil.copyfile(r / "solutions/gan1d/gan_1d.ipynb", r / "starter/gan1d/gan_1d.ipynb"),
     ["gan1d/gan_1d.ipynb", "a copy of solutions/gan1d/gan_1d.ipynb"]),
    (lambda r: _plant_in_notebook(r / "starter/vae/vae_wake_sleep.ipynb", next(
        s.text for s in secrets(r).values() if s.source.startswith("solutions/vae/vae_wake_sleep.ipynb"))),
     ["vae/vae_wake_sleep.ipynb", "solutions/vae/vae_wake_sleep.ipynb line"]),
    (lambda r: (r / "starter/gan/gan_answers.yaml").write_text(
        (r / "solutions/gan/gan_answers.yaml").read_text()), ["gan/gan_answers.yaml"]),
    (lambda r: (r / "assignments/gan/checks.py").write_text((r / "assignments/gan/checks.py").read_text() + "\n"
                                                           + (r / "assignments/gan/hidden.py").read_text()),
     ["grader/data/assignments/gan/checks.py: declares 'gan.d_loss', a hidden check of assignments/gan/hidden.py"]),
    (lambda r: (r / "starter/gan_split/solutions").mkdir() or shutil.copyfile(
        r / "solutions/gan/codebase/utils.py", r / "starter/gan_split/solutions/utils.py"),
     ["gan_split/solutions/utils.py: inside a solutions/ folder"]),
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
    from grader.app.cli import main

    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "keep.txt").write_text("mine")
    assert main(["release", "--out", str(tmp_path / "b")]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["release", "--out", str(tmp_path / "ok"), "--assignment", "gan"]) == 0
    assert (tmp_path / "ok" / "gan" / "README.md").is_file()
    assert not (tmp_path / "ok" / "vae").exists() and not (tmp_path / "ok" / "gan_split").exists()


def test_grader_check_works_from_an_installed_bundle(bundle, tmp_path):
    """pip-install the bundle (into a folder of its own, with this environment's torch), delete the bundle
    folder, and use it as a student would. No virtual environment: one built on the base interpreter may
    lack this environment's setuptools (and its wheel support) on a fresh machine."""
    out, _ = bundle
    site = tmp_path / "site"
    before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                           "--no-index", "--target", str(site), str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    after = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    assert after == before, sorted(set(after) - set(before))[:5]   # no build/ or egg-info left in the bundle
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "PYTHONPATH": str(site)}
    work = tmp_path / "work"
    shutil.copytree(out / "gan", work)
    shutil.rmtree(out / "grader")  # the installed copy must stand alone, not lean on the bundle folder

    def grader(*args, cwd=work):
        return subprocess.run([sys.executable, "-c", "from grader.app.cli import entry; entry()", *args], cwd=cwd,
                              capture_output=True, text=True, timeout=300, env=env)

    first = grader("check")
    assert first.returncode == 1, first.stderr   # the untouched starter fails its checks: exit 1, like pytest
    assert "1/23 public checks passed" in first.stdout   # only the answers file parses
    assert "not answered yet: 4.2a, 4.2b, 4.4a" in first.stdout
    shutil.copyfile(REPO_ROOT / "solutions" / "gan" / "codebase" / "gan.py", work / "codebase" / "gan.py")
    second = grader("check")
    assert "23/23 public checks passed" in second.stdout and second.returncode == 0, second.stdout
    for command in (["grade", "--assignment", "gan", "."], ["release", "--out", "x"],
                    ["autograder", "--assignment", "gan"], ["new", "flows"], ["demo"]):
        refused = grader(*command)
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1, (command, refused.stderr)
        assert "Traceback" not in refused.stderr and "grader: error:" in refused.stderr
    where = subprocess.run([sys.executable, "-c", "import grader.engine.paths as p; print(p.IS_BUNDLE, p.SOLUTIONS_DIR.exists())"],
                           capture_output=True, text=True, cwd=tmp_path, env=env)
    assert where.stdout.split() == ["True", "False"]


def test_a_release_of_one_assignment_ships_its_files_only(tmp_path):
    files = set(build(tmp_path / "b", assignments=["gan1d"]))
    assert {"gan1d/gan_1d.ipynb", "gan1d/make_submission.sh", "gan1d/README.md",
            "grader/data/assignments/gan1d/checks.py"} <= files
    assert not [f for f in files if "codebase" in f or "vae" in f or "gan_split" in f or "gan/" in f], files
    readme = (tmp_path / "b" / "README.md").read_text()
    assert "cd gan1d" in readme and "gan_split" not in readme and "download.pytorch.org/whl/cpu" in readme
    split = set(build(tmp_path / "s", assignments=["gan_split"]))   # it uses gan: the grader gets gan's files
    assert {"gan_split/codebase/network.py", "grader/data/starter/gan/codebase/gan.py"} <= split
    assert not [f for f in split if f.startswith("gan/")], split

"""grader autograder: a Gradescope bundle that grades /autograder/submission into a results.json,
tried in a temporary root laid out like /autograder."""
import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile

import pytest

from grader.builders.autograder import build
from grader.engine.paths import REPO_ROOT

EXAMPLES = REPO_ROOT / "assignments" / "gan" / "examples"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("ag") / "autograder.zip"
    build("gan", out)
    return out


def _root(tmp_path, bundle, submission=None):
    """A fake /autograder: source/ unpacked from the zip, submission/ as Gradescope fills it."""
    root = tmp_path / "autograder"
    with zipfile.ZipFile(bundle) as zf:
        zf.extractall(root / "source")
        for info in zf.infolist():   # extractall drops the permission bits Gradescope keeps
            mode = info.external_attr >> 16
            if mode & stat.S_IXUSR:
                os.chmod(root / "source" / info.filename, 0o755)
    (root / "submission").mkdir()
    if submission is not None:
        shutil.copytree(submission, root / "submission", dirs_exist_ok=True)
    return root


def _run(root, python=sys.executable):
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "AUTOGRADER_PYTHON": str(python)}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([str(root / "source" / "run_autograder")], env=env, capture_output=True, text=True,
                          timeout=600, cwd=root)
    assert proc.returncode == 0, proc.stderr
    return json.loads((root / "results" / "results.json").read_text())


def test_the_zip_holds_setup_run_script_and_the_hidden_material(bundle):
    with zipfile.ZipFile(bundle) as zf:
        names = set(zf.namelist())
        modes = {i.filename: i.external_attr >> 16 for i in zf.infolist()}
        setup = zf.read("setup.sh").decode()
        requirements = zf.read("requirements.txt").decode()
    assert {"setup.sh", "run_autograder", "requirements.txt", "pyproject.toml", "README.md", "SECURITY.md",
            "assignments/gan/hidden.py", "solutions/gan/codebase/gan.py", "solutions/gan/gan_answers.yaml",
            "assignments/gan/assignment.yaml", "starter/gan/codebase/utils.py"} <= names
    assert not [n for n in names if "/examples/" in n or "__pycache__" in n or n.startswith("assignments/vae")]
    assert modes["run_autograder"] & stat.S_IXUSR and modes["setup.sh"] & stat.S_IXUSR
    assert "download.pytorch.org/whl/cpu" in setup and "torch==" in setup and "bubblewrap" in setup
    assert all("==" in line for line in requirements.splitlines())        # pinned
    assert "torch" not in requirements.split()                            # CPU torch comes from its own index


def test_run_autograder_grades_a_real_submission(tmp_path, bundle):
    root = _root(tmp_path, bundle, EXAMPLES / "alice_correct")
    results = _run(root)
    assert results["score"] == 48
    assert len([t for t in results["tests"] if "manual" not in t["tags"]]) == 40   # 36 code (6 stability), 4 answers
    assert all({"name", "score", "max_score", "output", "visibility"} <= set(t) for t in results["tests"])
    assert "dgm-harness" in results["output"]
    assert not [t for t in results["tests"] if "manual" in t["tags"]]   # staff items are not tests with a status
    assert "48 of 48 points graded automatically; 92 more points graded by course staff." in results["output"]
    assert "Graded by course staff (not yet graded): 1.1 Vanishing gradient of the minimax loss (5);" in results["output"]
    assert "7.2 Creative adversarial networks: multi-class cross-entropy (bonus) (10 bonus)" in results["output"]


def test_a_wrong_submission_loses_only_its_parts(tmp_path, bundle):
    root = _root(tmp_path, bundle, EXAMPLES / "bob_minimax_as_nonsaturating")
    results = _run(root)
    assert 0 < results["score"] < 48


def test_an_empty_upload_gets_a_valid_result_that_says_what_is_missing(tmp_path, bundle):
    results = _run(_root(tmp_path, bundle))
    assert results["score"] == 0 and "codebase/gan.py is missing" in json.dumps(results)


def test_a_broken_grader_still_writes_a_valid_results_file(tmp_path, bundle):
    root = _root(tmp_path, bundle, EXAMPLES / "alice_correct")
    (root / "source" / "grader" / "engine" / "grade.py").write_text("raise RuntimeError('the grader is broken')\n")
    results = _run(root)
    assert results["score"] == 0 and "Course staff have been told" in results["output"]
    staff = [t for t in results["tests"] if t["visibility"] == "hidden"]
    assert staff and "the grader is broken" in staff[0]["output"]
    results = _run(root, python="/nonexistent/python3")   # no interpreter at all: the shell writes it
    assert results["score"] == 0 and results["tests"] == [] and "could not grade" in results["output"]


def test_the_split_version_bundle_carries_the_assignment_it_uses(tmp_path):
    out = tmp_path / "split.zip"
    build("gan_split", out)
    names = set(zipfile.ZipFile(out).namelist())
    assert {"assignments/gan_split/assignment.yaml", "assignments/gan/probes.py", "assignments/gan/hidden.py",
            "solutions/gan_split/codebase/gan.py"} <= names
    root = _root(tmp_path, out, REPO_ROOT / "assignments" / "gan_split" / "examples" / "ada_correct")
    results = _run(root)
    assert results["score"] == 35, [t["output"] for t in results["tests"] if t["status"] == "failed"][:2]


def _torch_source(folder, env=None):
    """What setup.sh's first lines choose as torch's index, run alone (no apt, no pip) in ``folder``."""
    setup = (folder / "setup.sh").read_text()
    head = setup[:setup.index("\n", setup.index('echo "setup.sh: torch from')) + 1]
    head += 'echo "TORCH_FROM=${TORCH_FROM[*]+${TORCH_FROM[*]}}"\n'
    (folder / "head.sh").write_text(head)
    environ = {k: v for k, v in os.environ.items() if k != "DGM_TORCH_INDEX"}
    proc = subprocess.run(["bash", str(folder / "head.sh")], env={**environ, **(env or {})}, capture_output=True,
                          text=True, check=True)
    return proc.stdout.splitlines()[-1]


def test_setup_takes_torch_from_the_environment_then_torch_index_txt_then_the_cpu_index(tmp_path):
    build("gan", tmp_path / "cpu.zip")
    zipfile.ZipFile(tmp_path / "cpu.zip").extractall(tmp_path / "cpu")
    assert _torch_source(tmp_path / "cpu") == "TORCH_FROM=--index-url https://download.pytorch.org/whl/cpu"
    assert _torch_source(tmp_path / "cpu", {"DGM_TORCH_INDEX": "pypi"}) == "TORCH_FROM="
    assert _torch_source(tmp_path / "cpu", {"DGM_TORCH_INDEX": ""}) == "TORCH_FROM="
    assert _torch_source(tmp_path / "cpu", {"DGM_TORCH_INDEX": "https://example.org/simple"}) == \
        "TORCH_FROM=--index-url https://example.org/simple"
    proc = subprocess.run([sys.executable, "-m", "grader", "autograder", "--assignment", "gan", "--torch-index", "pypi",
                           "--out", str(tmp_path / "pypi.zip")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    zipfile.ZipFile(tmp_path / "pypi.zip").extractall(tmp_path / "pypi")
    assert (tmp_path / "pypi" / "torch_index.txt").read_text() == "pypi\n"
    assert _torch_source(tmp_path / "pypi") == "TORCH_FROM="
    assert _torch_source(tmp_path / "pypi", {"DGM_TORCH_INDEX": "https://example.org/simple"}) == \
        "TORCH_FROM=--index-url https://example.org/simple"

"""make_submission.sh: refuses incomplete work with a message, packages complete work."""
import shutil
import subprocess
import zipfile

import pytest

from grader.paths import STARTER_DIR


@pytest.fixture
def hw(tmp_path):
    folder = tmp_path / "hw"
    shutil.copytree(STARTER_DIR, folder)
    return folder


def run(folder, *args):
    return subprocess.run(["bash", "make_submission.sh", *args], cwd=folder, capture_output=True, text=True, timeout=60)


def test_missing_gan_py_fails_with_message(hw):
    (hw / "codebase" / "gan.py").unlink()
    proc = run(hw, "gan")
    assert proc.returncode != 0
    assert "codebase/gan.py is missing" in proc.stderr
    assert not (hw / "gan_submission.zip").exists()


def test_syntax_error_fails_with_line(hw):
    (hw / "codebase" / "gan.py").write_text("def f(:\n    pass\n")
    proc = run(hw)
    assert proc.returncode != 0
    assert "does not parse: line 1" in proc.stderr


def test_packages_gan_py_and_latest_grid_of_each_run(hw):
    for folder, steps in (("out_nonsaturating", (50, 100, 937)), ("out_wasserstein_gp", (50,))):
        (hw / folder).mkdir()
        for s in steps:
            (hw / folder / f"fake_{s:04d}.png").write_bytes(b"png")
        (hw / folder / "learning_curve.png").write_bytes(b"png")
    proc = run(hw)
    assert proc.returncode == 0, proc.stderr
    names = set(zipfile.ZipFile(hw / "gan_submission.zip").namelist())
    assert names == {"codebase/gan.py", "gan_answers.yaml", "out_nonsaturating/fake_0937.png",
                     "out_nonsaturating/learning_curve.png", "out_wasserstein_gp/fake_0050.png",
                     "out_wasserstein_gp/learning_curve.png"}
    assert "no out_nonsaturating_conditional/fake_*.png yet (train with: python run_conditional_gan.py)" \
        in proc.stderr  # warned, not refused


def test_submission_zip_grades(hw, gan_assignment):
    from grader.grade import grade

    assert run(hw).returncode == 0
    result = grade(gan_assignment, hw / "gan_submission.zip")
    assert result.status == "error" and result.score == 0   # every stub raises
    assert all("not implemented" in t.output for t in result.tests if not t.manual and t.tags != ["answers"])
    assert all("not answered" in t.output for t in result.tests if t.tags == ["answers"] and t.max_score)


@pytest.mark.parametrize("assignment,notebook", [("gan1d", "gan_1d.ipynb"), ("vae", "vae_wake_sleep.ipynb")])
def test_notebook_packaged_when_valid(hw, assignment, notebook):
    proc = run(hw, assignment)
    assert proc.returncode == 0, proc.stderr
    expected = [notebook] + (["vae_answers.yaml"] if assignment == "vae" else [])
    assert zipfile.ZipFile(hw / f"{assignment}_submission.zip").namelist() == expected


@pytest.mark.parametrize("breakage,says", [
    (lambda p: p.unlink(), "gan_1d.ipynb is missing"),
    (lambda p: p.write_text("{oops"), "not a valid notebook"),
    (lambda p: p.write_text(p.read_text().replace("def train(", "def training(")), "does not define train"),
    (lambda p: p.write_bytes(p.read_bytes() + b" " * (101 << 20)), "the limit is 100 MB"),
])
def test_notebook_problems_are_refused(hw, breakage, says):
    breakage(hw / "gan_1d.ipynb")
    proc = run(hw, "gan1d")
    assert proc.returncode != 0 and says in proc.stderr
    assert not (hw / "gan1d_submission.zip").exists()


def test_unknown_assignment_lists_the_choices(hw):
    proc = run(hw, "vea")
    assert proc.returncode != 0 and "unknown assignment 'vea'; available: gan, gan1d, gan_split, vae" in proc.stderr


def test_the_split_version_packs_from_its_own_folder(hw):
    """starter/gan_split holds codebase/gan.py too: the script packs the assignment whose functions it defines."""
    folder = hw / "gan_split"
    (folder / "out_conditional").mkdir()
    (folder / "out_conditional" / "fake_0050.png").write_bytes(b"png")
    proc = subprocess.run(["bash", "make_submission.sh"], cwd=folder, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert set(zipfile.ZipFile(folder / "gan_split_submission.zip").namelist()) == {
        "codebase/gan.py", "out_conditional/fake_0050.png"}
    assert "no out_nonsaturating/fake_*.png yet (train with: python run_gan.py --loss_type nonsaturating)" \
        in proc.stderr

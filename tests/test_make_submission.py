"""make_submission.sh: each assignment folder's copy packs that assignment only, refuses incomplete or
another assignment's work with a message, and packages complete work."""
import json
import shutil
import subprocess
import zipfile

import pytest

from grader.engine.paths import SOLUTIONS_DIR, STARTER_DIR


@pytest.fixture
def hw(tmp_path):
    """A student's copy of the whole starter: one folder per assignment, side by side."""
    folder = tmp_path / "hw"
    shutil.copytree(STARTER_DIR, folder)
    return folder


def run(folder, *args, script="make_submission.sh"):
    return subprocess.run(["bash", script, *args], cwd=folder, capture_output=True, text=True, timeout=60)


def test_missing_gan_py_fails_with_message(hw):
    (hw / "gan" / "codebase" / "gan.py").unlink()
    proc = run(hw / "gan", "gan")
    assert proc.returncode != 0
    assert "codebase/gan.py is missing" in proc.stderr
    assert not (hw / "gan" / "gan_submission.zip").exists()


def test_syntax_error_fails_with_line(hw):
    (hw / "gan" / "codebase" / "gan.py").write_text("def f(:\n    pass\n")
    proc = run(hw / "gan")
    assert proc.returncode != 0
    assert "does not parse: line 1" in proc.stderr


def test_packages_gan_py_and_latest_grid_of_each_run(hw):
    gan = hw / "gan"
    for folder, steps in (("out_nonsaturating", (50, 100, 937)), ("out_wasserstein_gp", (50,))):
        (gan / folder).mkdir()
        for s in steps:
            (gan / folder / f"fake_{s:04d}.png").write_bytes(b"png")
        (gan / folder / "learning_curve.png").write_bytes(b"png")
    proc = run(gan)
    assert proc.returncode == 0, proc.stderr
    names = set(zipfile.ZipFile(gan / "gan_submission.zip").namelist())
    assert names == {"codebase/gan.py", "gan_answers.yaml", "out_nonsaturating/fake_0937.png",
                     "out_nonsaturating/learning_curve.png", "out_wasserstein_gp/fake_0050.png",
                     "out_wasserstein_gp/learning_curve.png"}
    assert "no out_nonsaturating_conditional/fake_*.png yet (train with: python run_conditional_gan.py)" \
        in proc.stderr  # warned, not refused


def test_submission_zip_grades(hw, gan_assignment):
    from grader.engine.grade import grade

    assert run(hw / "gan").returncode == 0
    result = grade(gan_assignment, hw / "gan" / "gan_submission.zip")
    assert result.status == "error" and result.score == 0   # every stub raises
    assert all("not implemented" in t.output for t in result.tests if not t.manual and t.tags != ["answers"])
    assert all("not answered" in t.output for t in result.tests if t.tags == ["answers"] and t.max_score)


@pytest.mark.parametrize("assignment,notebook", [("gan1d", "gan_1d.ipynb"), ("vae", "vae_wake_sleep.ipynb")])
def test_notebook_packaged_when_valid(hw, assignment, notebook):
    proc = run(hw / assignment)
    assert proc.returncode == 0, proc.stderr
    expected = [notebook] + (["vae_answers.yaml"] if assignment == "vae" else [])
    assert zipfile.ZipFile(hw / assignment / f"{assignment}_submission.zip").namelist() == expected


@pytest.mark.parametrize("breakage,says", [
    (lambda p: p.unlink(), "gan_1d.ipynb is missing"),
    (lambda p: p.write_text("{oops"), "not a valid notebook"),
    (lambda p: p.write_text(p.read_text().replace("def train(", "def training(")), "does not define train"),
    (lambda p: p.write_bytes(p.read_bytes() + b" " * (101 << 20)), "the limit is 100 MB"),
])
def test_notebook_problems_are_refused(hw, breakage, says):
    breakage(hw / "gan1d" / "gan_1d.ipynb")
    proc = run(hw / "gan1d", "gan1d")
    assert proc.returncode != 0 and says in proc.stderr
    assert not (hw / "gan1d" / "gan1d_submission.zip").exists()


def test_unknown_assignment_names_this_folder_s(hw):
    proc = run(hw / "vae", "vea")
    assert proc.returncode != 0
    assert "unknown assignment 'vea'; this folder is vae's: run ./make_submission.sh with no argument" in proc.stderr


@pytest.mark.parametrize("cwd,script,asked,mine", [
    ("gan", "make_submission.sh", "gan_split", "gan"),              # the other version's name, in gan/
    ("gan_split", "../gan/make_submission.sh", "gan_split", "gan"),  # another folder's script, from here
    ("gan_split", "make_submission.sh", "gan", "gan_split"),
    (".", "gan1d/make_submission.sh", "vae", "gan1d"),              # from above the folders
])
def test_a_folder_s_script_refuses_another_assignment_with_a_pointer(hw, cwd, script, asked, mine):
    """The issue's three commands that packed the wrong homework, and one more: each refuses in one line
    that names the right script."""
    proc = run(hw / cwd, asked, script=script)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert f"this folder is {mine}'s; {asked} has a folder of its own: run ../{asked}/make_submission.sh" \
        in proc.stderr
    assert not list(hw.rglob("*_submission.zip"))


def test_a_folder_s_script_packs_its_own_folder_from_anywhere(hw):
    proc = run(hw, script="gan_split/make_submission.sh")
    assert proc.returncode == 0, proc.stderr
    assert set(zipfile.ZipFile(hw / "gan_split" / "gan_split_submission.zip").namelist()) == {"codebase/gan.py"}
    assert not (hw / "gan_submission.zip").exists() and not (hw / "gan_split_submission.zip").exists()


def test_the_split_version_packs_from_its_own_folder(hw):
    folder = hw / "gan_split"
    (folder / "out_conditional").mkdir()
    (folder / "out_conditional" / "fake_0050.png").write_bytes(b"png")
    proc = run(folder)
    assert proc.returncode == 0, proc.stderr
    assert set(zipfile.ZipFile(folder / "gan_split_submission.zip").namelist()) == {
        "codebase/gan.py", "out_conditional/fake_0050.png"}
    assert "no out_nonsaturating/fake_*.png yet (train with: python run_gan.py --loss_type nonsaturating)" \
        in proc.stderr


@pytest.mark.parametrize("folder,other", [("gan_split", "gan"), ("gan", "gan_split")])
def test_another_assignment_s_code_is_refused_naming_the_one_it_fits(hw, folder, other):
    """The other course version's gan.py, copied into this folder: refused, with the folder it belongs in."""
    shutil.copyfile(SOLUTIONS_DIR / other / "codebase" / "gan.py", hw / folder / "codebase" / "gan.py")
    proc = run(hw / folder)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert f"codebase/gan.py holds the functions of {other}, not of {folder}" in proc.stderr
    assert f"packed by ../{other}/make_submission.sh" in proc.stderr
    assert not (hw / folder / f"{folder}_submission.zip").exists()


def test_a_py_file_lacking_a_graded_function_is_refused_and_a_stub_is_a_named_warning(hw):
    gan_py = hw / "gan" / "codebase" / "gan.py"
    reference = (SOLUTIONS_DIR / "gan" / "codebase" / "gan.py").read_text()
    gan_py.write_text(reference.replace("def loss_minimax(", "def loss_minmax("))
    proc = run(hw / "gan")
    assert proc.returncode == 1
    assert "codebase/gan.py does not define loss_minimax at the top level of the file" in proc.stderr
    starter = (STARTER_DIR / "gan" / "codebase" / "gan.py").read_text()
    stub = starter[starter.index("def loss_wasserstein_gp("):]
    gan_py.write_text(reference[:reference.index("def loss_wasserstein_gp(")] + stub)
    proc = run(hw / "gan")
    assert proc.returncode == 0, proc.stderr
    assert "still raising NotImplementedError, so scoring 0): loss_wasserstein_gp\n" in proc.stderr


def _run_all(path):
    """The notebook as Jupyter saves it after Run All: every code cell numbered, with an output."""
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    for n, cell in enumerate(code, 1):
        cell["execution_count"] = n
        cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["ok\n"]}]
    path.write_text(json.dumps(nb))
    return nb, code


@pytest.mark.parametrize("assignment,notebook,figure", [
    ("gan1d", "gan_1d.ipynb", "1.2 Plot both generator losses"),
    ("vae", "vae_wake_sleep.ipynb", "1.6.3 Latent scatter of 5000 test digits"),
])
def test_a_notebook_saved_unrun_is_packed_with_a_warning_naming_the_staff_graded_figures(hw, assignment, notebook,
                                                                                      figure):
    folder, path = hw / assignment, hw / assignment / notebook
    shutil.copyfile(SOLUTIONS_DIR / assignment / notebook, path)
    proc = run(folder)   # as the solution is stored: no outputs at all
    assert proc.returncode == 0 and (folder / f"{assignment}_submission.zip").is_file(), proc.stderr
    assert f"{notebook} was saved without any outputs, so it lacks the figures course staff grade" in proc.stderr
    assert figure in proc.stderr
    nb, code = _run_all(path)
    proc = run(folder)
    assert proc.returncode == 0 and "figures" not in proc.stderr, proc.stderr   # run and saved: nothing to say
    code[-1]["execution_count"], code[-1]["outputs"] = None, []
    path.write_text(json.dumps(nb))
    proc = run(folder)
    last = nb["cells"].index(code[-1]) + 1
    assert f"has 1 of its {len(code)} code cells never run (cell {last}), so it lacks the figures" in proc.stderr
    assert proc.returncode == 0 and figure in proc.stderr

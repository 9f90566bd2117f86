"""The vae notebook: reference full marks, starter zero, the variant catalogue, smoke execution."""
import shutil

import pytest

from catalogue import assert_covers, assert_graded_as_intended, batches, replace_function
from grader.engine.assignment import load_assignment
from grader.engine.grade import grade
from grader.engine.paths import SOLUTIONS_DIR, STARTER_DIR
from idx import write_idx
from vae_variants import IWAE, KL, SLEEP, TRAIN, VARIANTS, WAKE

REFERENCE = (SOLUTIONS_DIR / "vae" / "vae_wake_sleep.ipynb").read_text()
BATCHES = batches(VARIANTS)
FULL = {"gaussian_kl": KL, "wake_loss": WAKE, "sleep_loss": SLEEP, "iwae_bound": IWAE, "train_wake_sleep": TRAIN}


@pytest.fixture(scope="module")
def assignment():
    return load_assignment("vae")


def test_reference_full_marks_starter_zero(assignment):
    ref = grade(assignment, SOLUTIONS_DIR / "vae")   # the notebook and vae_answers.yaml
    assert ref.score == ref.max_score == 30, [t.output for t in ref.tests if not t.passed]
    start = grade(assignment, STARTER_DIR / "vae")
    assert start.score == 0
    assert all("not implemented" in t.output for t in start.tests if t.tags[0] in FULL)
    assert all("not answered" in t.output for t in start.tests if t.tags == ["answers"] and t.max_score)


@pytest.mark.parametrize("batch", BATCHES, ids=["+".join(v.name for v in b) for b in BATCHES])
def test_variant_batch(assignment, tmp_path, batch):
    text = REFERENCE
    for v in batch:
        text = replace_function(text, v.function, v.source)
    (tmp_path / "vae_wake_sleep.ipynb").write_text(text)
    shutil.copy(SOLUTIONS_DIR / "vae" / "vae_answers.yaml", tmp_path)   # right answers: only the code varies
    assert_graded_as_intended(assignment, grade(assignment, tmp_path), batch)


def test_catalogue_covers_every_function():
    assert_covers(VARIANTS, FULL)


@pytest.mark.heavy
def test_notebook_runs_top_to_bottom_in_smoke_mode(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    write_idx(tmp_path / "data", dataset="MNIST", n_train=300, n_test=100)
    monkeypatch.setenv("SMOKE", "1")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    nb = nbformat.read(SOLUTIONS_DIR / "vae" / "vae_wake_sleep.ipynb", as_version=4)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 4   # L_100 and losses, reconstructions, latent scatter, manifold
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "300 training and 100 test images" in text and "wake-sleep:" in text

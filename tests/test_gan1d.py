"""The gan1d notebook: reference full marks, starter zero, the variant catalogue, smoke execution."""
import json
import os

import pytest

from catalogue import assert_covers, assert_graded_as_intended, batches, replace_function
from gan1d_variants import ALL_D, ALL_G, ALL_T, VARIANTS
from grader.engine.assignment import load_assignment
from grader.engine.grade import grade
from grader.engine.paths import SOLUTIONS_DIR, STARTER_DIR

REFERENCE = (SOLUTIONS_DIR / "gan1d" / "gan_1d.ipynb").read_text()
BATCHES = batches(VARIANTS)


@pytest.fixture(scope="module")
def assignment():
    return load_assignment("gan1d")


def test_reference_full_marks_starter_zero(assignment, tmp_path):
    ref = grade(assignment, SOLUTIONS_DIR / "gan1d" / "gan_1d.ipynb")
    assert ref.score == ref.max_score == 20, [t.output for t in ref.tests if not t.passed]
    start = grade(assignment, STARTER_DIR / "gan1d" / "gan_1d.ipynb")
    assert start.score == 0
    assert all("not implemented" in t.output for t in start.tests if not t.manual)


@pytest.mark.parametrize("batch", BATCHES, ids=["+".join(v.name for v in b) for b in BATCHES])
def test_variant_batch(assignment, tmp_path, batch):
    text = REFERENCE
    for v in batch:
        text = replace_function(text, v.function, v.source)
    nb = tmp_path / "gan_1d.ipynb"
    nb.write_text(text)
    assert_graded_as_intended(assignment, grade(assignment, nb), batch)


def test_catalogue_covers_every_function():
    assert_covers(VARIANTS, {"discriminator_loss": ALL_D, "generator_loss": ALL_G, "train": ALL_T})


def test_defined_twice_is_noted_and_the_last_definition_graded(assignment, tmp_path):
    nb = json.loads(REFERENCE)
    wrong = "def discriminator_loss(d_real, d_fake):\n    return d_real.mean() * 0\n"
    nb["cells"].insert(2, {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
                           "source": wrong})
    (tmp_path / "gan_1d.ipynb").write_text(json.dumps(nb))
    result = grade(assignment, tmp_path / "gan_1d.ipynb")
    d_tests = [t for t in result.tests if t.tags == ["discriminator_loss"]]
    assert all(t.passed for t in d_tests)   # the later, correct definition wins
    assert all("defined in 2 cells" in t.output for t in d_tests)


def test_missing_function_and_invalid_notebook(assignment, tmp_path):
    nb = json.loads(REFERENCE)
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        cell["source"] = src.replace("def train(", "def train_model(")
    (tmp_path / "a.ipynb").write_text(json.dumps(nb))
    r = grade(assignment, tmp_path / "a.ipynb")
    train = [t for t in r.tests if t.tags == ["train"]]
    assert r.score == 10 and all("gan_1d.ipynb defines no function named 'train'" in t.output for t in train)
    assert len(r.stops) == 1 and "defines no function named 'train'" in r.stops[0]   # reports state it once


def test_an_error_at_import_names_the_notebook_cell(assignment, tmp_path):
    nb = json.loads(REFERENCE)
    nb["cells"].insert(3, {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
                           "source": "class Settings:\n    scale = undefined_name\n"})
    (tmp_path / "gan_1d.ipynb").write_text(json.dumps(nb))
    r = grade(assignment, tmp_path / "gan_1d.ipynb")
    assert r.score == 0 and len(r.stops) == 1
    assert "NameError" in r.stops[0] and "(at gan_1d.ipynb, cell 4: scale = undefined_name)" in r.stops[0]
    (tmp_path / "b.ipynb").write_text("{not json")
    r = grade(assignment, tmp_path / "b.ipynb")
    assert r.score == 0 and r.status == "invalid" and "not valid notebook JSON" in r.tests[0].output


@pytest.mark.heavy
def test_notebook_runs_top_to_bottom_in_smoke_mode(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("SMOKE", "1")
    nb = nbformat.read(SOLUTIONS_DIR / "gan1d" / "gan_1d.ipynb", as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 3   # loss/gradient curves, histograms with D(x), learning curves
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "Wasserstein-1 distance" in text
    assert os.environ["SMOKE"] == "1"


def test_no_training_is_named(assignment, tmp_path):
    """Steps that change nothing, and a generator fixed to the target's mean, fail with their reason."""
    from conftest import shown

    v = {x.name: x for x in VARIANTS}
    nb = REFERENCE
    for name, structure, fit in (("train_learning_rate_zero", "changed no parameter", "the mean should be"),
                                 ("train_constant_generator", "changed no parameter", "spread should be")):
        path = tmp_path / f"{name}.ipynb"
        path.write_text(replace_function(nb, "train", v[name].source))
        r = grade(assignment, path)
        texts = {t.name.split(": ", 1)[1][:10]: shown(t) for t in r.tests if t.tags == ["train"]}
        assert structure in next(x for k, x in texts.items() if k.startswith("k D")), texts
        assert fit in next(x for k, x in texts.items() if k.startswith("1000")), texts

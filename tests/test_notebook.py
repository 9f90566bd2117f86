"""Building a module from a notebook: keep definitions, drop what would train or plot."""
import json

import pytest

from grader.engine.notebook import NotebookError, extract


def nb(*cells: str) -> str:
    return json.dumps({"cells": [{"cell_type": "code", "source": c} for c in cells]
                       + [{"cell_type": "markdown", "source": "# def not_code(): pass"}]})


def run(source: str) -> dict:
    ns: dict = {}
    exec(compile(source, "m", "exec"), ns)
    return ns


def test_keeps_definitions_and_constants_drops_the_rest():
    ex = extract(nb("%matplotlib inline\n!pip install foo\nimport math\nimport not_a_real_package\n",
                    "SMOKE = True\nEPOCHS = 1 if SMOKE else 100\nmodel = build_model()\ntrain(model)\n",
                    "def f(x):\n    return math.sqrt(x) * EPOCHS\nprint(f(4))\nfor i in range(3):\n    f(i)\n",
                    "class A:\n    pass\nif SMOKE:\n    N = 2\nelse:\n    N = 3\n"), ["f"])
    ns = run(ex.source)
    assert ns["f"](4) == 2.0 and ns["N"] == 2 and "A" in ns
    assert "model" not in ns and "build_model" not in ex.source and "print" not in ex.source
    assert ex.cells == {"f": [3]} and ex.problems == []


def test_defined_twice_and_broken_cells_are_reported():
    ex = extract(nb("def f():\n    return 1\n", "def f(:\n", "def f():\n    return 2\n"), ["f", "g"])
    assert run(ex.source)["f"]() == 2
    assert "defined in 2 cells (1, 3)" in ex.notes("f") and ex.notes("g") == ""
    assert ex.problems == ["cell 2 has a syntax error (line 1: invalid syntax); it was skipped"]


@pytest.mark.parametrize("text", ["{not json", "[]", '{"cells": 3}'])
def test_not_a_notebook(text):
    with pytest.raises(NotebookError):
        extract(text, ["f"])


def test_outputs_are_skipped_without_being_parsed():
    """Figures weigh what they weigh: outputs are cut from the text before it is parsed, in one pass
    that respects strings (an "outputs" inside a source or a key of the metadata stays)."""
    from grader.engine.notebook import without_outputs

    heavy = {"data": {"image/png": "A" * (8 << 20)}, "text": ']"[}\\'}
    nb = {"cells": [{"cell_type": "code", "source": ["x = '\"outputs\": [1, 2'\n"], "outputs": [heavy],
                     "metadata": {}},
                    {"cell_type": "markdown", "source": "\"outputs\": [", "metadata": {}},
                    {"cell_type": "code", "source": "z = 2", "outputs": [], "metadata": {"outputs": 3}}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    for indent in (None, 1):
        cut = json.loads(without_outputs(json.dumps(nb, indent=indent)))
        assert [c.get("outputs") for c in cut["cells"]] == [[], None, []]
        assert [c["source"] for c in cut["cells"]] == [c["source"] for c in nb["cells"]]
        assert cut["cells"][2]["metadata"] == {"outputs": 3}
    assert json.loads(without_outputs('{"a": "\\"outputs\\": [1]"}')) == {"a": '"outputs": [1]'}


def test_a_notebook_heavier_than_20_mb_is_graded_on_its_code(tmp_path):
    """A correct notebook whose figures weigh 40 MB gets full marks on its code."""
    from grader.engine.assignment import load_assignment
    from grader.engine.grade import grade
    from grader.engine.paths import REPO_ROOT

    nb = json.loads((REPO_ROOT / "assignments" / "gan1d" / "examples" / "frank_correct.ipynb").read_text())
    figure = {"output_type": "display_data", "metadata": {},
              "data": {"image/png": "iVBORw0KGgo" + "A" * (40 << 20), "text/plain": ["<Figure>"]}}
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    code[-1]["outputs"] = [figure]
    path = tmp_path / "gan_1d.ipynb"
    path.write_text(json.dumps(nb))
    assert path.stat().st_size > 40 << 20
    r = grade(load_assignment("gan1d"), path)
    assert r.score == r.max_score == 20, [t.output for t in r.tests if not t.passed]

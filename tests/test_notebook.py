"""Building a module from a notebook: keep definitions, drop what would train or plot."""
import json

import pytest

from grader.notebook import NotebookError, extract


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

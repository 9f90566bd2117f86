"""docs/grading.md's tables of what each answer costs are the ones the variant catalogues give."""
import pytest

from grading_tables import ASSIGNMENTS, DOC, documented, rows, section


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_the_docs_table_is_the_catalogues(name):
    text = DOC.read_text()
    assert documented(text, name) == section(name), (
        f"docs/grading.md's table for {name} differs from the catalogue: run python tests/grading_tables.py --write")


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_every_function_has_a_full_marks_form_and_priced_mistakes(name):
    """Staff can predict a grade only when each function shows a right form, and every mistake a cost."""
    by_function: dict[str, list] = {}
    for fn, _, lost, total, says in rows(name):
        assert 0 <= lost <= total, (fn, lost, total)
        by_function.setdefault(fn, []).append((lost, says))
    for fn, entries in by_function.items():
        assert any(lost == 0 for lost, _ in entries), f"{name}: no full-marks form of {fn}"
        assert any(lost > 0 for lost, _ in entries), f"{name}: no priced mistake of {fn}"


def test_a_drifted_table_is_caught(tmp_path):
    """The check can fail: a table whose cost was edited by hand is not the catalogue's."""
    text = DOC.read_text()
    drifted = text.replace("| 3 of 3 | “the variance is used", "| 1 of 3 | “the variance is used", 1)
    assert drifted != text
    assert documented(drifted, "vae") != section("vae")

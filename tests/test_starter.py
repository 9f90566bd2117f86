"""starter/ is exactly what the generator makes from solutions/, and holds no solution text."""
import pytest

from grader.builders import starter
from grader.engine.paths import SOLUTIONS_DIR, STARTER_DIR


def test_starter_is_in_sync_with_solutions():
    assert starter.stale() == [], "starter/ is stale: run python -m grader.starter"


def test_no_solution_line_reaches_the_starter():
    for path in SOLUTIONS_DIR.rglob("*.py"):
        text = path.read_text()
        starter_text = (STARTER_DIR / path.relative_to(SOLUTIONS_DIR)).read_text()
        assert "BEGIN SOLUTION" not in starter_text and "END SOLUTION" not in starter_text
        inside = False
        for line in text.splitlines():
            if "# BEGIN SOLUTION" in line:
                inside = True
            elif "# END SOLUTION" in line:
                inside = False
            elif inside and line.strip() and not line.strip().startswith("#"):
                code_lines = [s.strip() for s in starter_text.splitlines()]
                assert line.strip() not in code_lines, f"{path.name}: solution line in starter: {line}"


def test_block_becomes_todo_with_marker_text():
    src = "def f(x):\n    # BEGIN SOLUTION: return twice x\n    # as a tensor\n    y = 2 * x\n    # END SOLUTION\n    return y\n"
    assert starter.strip_solutions(src, "t.py") == (
        "def f(x):\n    # TODO: return twice x\n    # as a tensor\n    raise NotImplementedError\n    return y\n")


@pytest.mark.parametrize("src,msg", [
    ("# BEGIN SOLUTION\nx = 1\n", "without END"),
    ("x = 1\n# END SOLUTION\n", "without BEGIN"),
    ("# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION\n", "nested"),
])
def test_unbalanced_markers_are_errors(src, msg):
    with pytest.raises(starter.MarkerError, match=msg):
        starter.strip_solutions(src, "t.py")


@pytest.mark.parametrize("todo", [
    "return 0.5 * (logvar.exp() + mu ** 2 - 1 - logvar).sum(dim=1)",
    "compute torch.logsumexp(log_w, dim=0) - math.log(k) over the samples",
])
def test_a_todo_that_repeats_solution_code_is_refused(todo):
    """The TODO text is what students read: it says what to do, never the code itself."""
    src = ("def f(mu, logvar, log_w, k):\n"
           f"    # BEGIN SOLUTION: {todo}\n"
           "    a = 0.5 * (logvar.exp() + mu ** 2 - 1 - logvar).sum(dim=1)\n"
           "    return torch.logsumexp(log_w, dim=0) - math.log(k)\n"
           "    # END SOLUTION\n")
    with pytest.raises(starter.MarkerError, match="repeats solution code"):
        starter.strip_solutions(src, "t.py")


def test_every_todo_of_the_course_says_what_to_do_in_words():
    starter.render()   # raises MarkerError on a TODO that repeats its block's code


def test_one_self_contained_folder_per_assignment_in_starter_and_solutions():
    """starter/<name>/ holds the student's files, the statement and a make_submission.sh naming <name>;
    solutions/ has the same folders and nothing at the top of either."""
    from grader.engine.assignment import available

    names = set(available())
    assert {p.name for p in STARTER_DIR.iterdir() if p.name != "__pycache__"} == names
    assert {p.name for p in SOLUTIONS_DIR.iterdir() if p.name != "__pycache__"} == names
    for name in names:
        folder = STARTER_DIR / name
        statement = (STARTER_DIR.parent / "assignments" / name / "README.md").read_text()
        assert (folder / "README.md").read_text() == statement
        script = (folder / "make_submission.sh").read_text()
        assert f'\nASSIGNMENT="{name}"' in script and 'ASSIGNMENT=""' not in script
        assert (folder / "make_submission.sh").stat().st_mode & 0o111

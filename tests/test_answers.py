"""Short answers: safe formulas, line-numbered errors, scoring by kind, and grading end to end."""
import math
import shutil

import pytest

from grader.builders.starter import strip_answers
from grader.engine.answers import AnswersError, evaluate, load_template, read_answers, score
from grader.engine.assignment import load_assignment
from grader.engine.grade import grade
from grader.engine.paths import SOLUTIONS_DIR, STARTER_DIR

TEMPLATE = """
q1:
  kind: choices
  options: [A, B, C]
  answer:
q2:
  kind: bool
  answer:
q3:
  kind: number
  answer:
q4:
  kind: expression
  variables: [theta]
  domain: [0, 1]
  answer:
"""


@pytest.fixture
def template():
    return load_template(TEMPLATE, "t.yaml")


@pytest.mark.parametrize("text,value", [("log(2)", math.log(2)), ("-log(4)", -math.log(4)), ("2^3", 8.0),
                                        ("inf", math.inf), ("1/2 * pi", math.pi / 2)])
def test_evaluate(text, value):
    assert evaluate(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["__import__('os').system('true')", "().__class__", "open('x')", "9**9**9", "x"])
def test_evaluate_refuses_everything_else(text):
    with pytest.raises(ValueError):
        evaluate(text)


def test_answers_are_read_by_kind(template):
    answers, problems = read_answers("q1: [B, A]\nq2: yes\nq3: log(2)\nq4:\n  answer: '|theta|'\n", template, "t.yaml")
    assert answers == {"q1": frozenset({"A", "B"}), "q2": True, "q3": pytest.approx(math.log(2)), "q4": "|theta|"}
    assert problems == []


@pytest.mark.parametrize("text,line,says", [
    ("q1: [A\nq2: true\n", 2, "not valid YAML"),
    ("q1: [A]\nq9: 3\n", 2, "unknown item q9"),
    ("q1: [A]\nq2: maybe\n", 2, "expected true or false"),
    ("q1: [D]\n", 1, "'D' is not an option; choose from A, B, C"),
    ("q3: lots\n", 1, "expected a number"),
    ("q4: 2*phi\n", 1, "expected a formula in theta"),
])
def test_malformed_answers_name_the_line(template, text, line, says):
    with pytest.raises(AnswersError) as err:
        read_answers(text, template, "t.yaml")
    assert f"t.yaml line {line}" in str(err.value) and says in str(err.value)


def test_blank_answers_are_notes_not_errors(template):
    answers, problems = read_answers("q1: [A]\nq2:\n", template, "t.yaml")
    assert answers["q2"] is None and "item q2 is not answered yet" in problems and "item q3 is missing" in problems


def test_scoring(template):
    t = template
    assert score(t["q1"], frozenset({"B", "A"}), ["A", "B"])[0]
    assert not score(t["q1"], frozenset({"A"}), ["A", "B"])[0]
    assert score(t["q2"], False, False)[0] and not score(t["q2"], True, False)[0]
    assert score(t["q3"], math.inf, "inf")[0] and not score(t["q3"], 1e300, "inf")[0]
    assert score(t["q3"], 0.6932, "log(2)")[0] and not score(t["q3"], 0.70, "log(2)")[0]
    assert score(t["q4"], "theta", "|theta|")[0]          # the same on the domain [0, 1]
    assert not score(t["q4"], "theta**2", "|theta|")[0]
    assert not score(t["q1"], None, ["A"])[0]


def test_a_wrong_choice_or_true_false_answer_says_what_was_given(template):
    """Like a wrong number ("0.7 is not right"), a wrong choice or verdict shows the answer given."""
    assert score(template["q1"], frozenset({"C", "A"}), ["A", "B"]) == (False, "your choice A, C is not right")
    assert score(template["q2"], True, False) == (False, "your answer true is not right")


def test_starter_answers_are_blank():
    text = (STARTER_DIR / "vae" / "vae_answers.yaml").read_text()
    assert "# SOLUTION" not in text and "answer: inf" not in text
    assert strip_answers("  answer: [A]  # SOLUTION\n  kind: bool\n") == "  answer:\n  kind: bool\n"


@pytest.fixture
def vae_submission(tmp_path):
    for name in ("vae_wake_sleep.ipynb", "vae_answers.yaml"):
        shutil.copy(SOLUTIONS_DIR / "vae" / name, tmp_path / name)
    return tmp_path


def answer_tests(result):
    return [t for t in result.tests if t.tags == ["answers"]]


def test_reference_answers_get_full_marks(vae_submission):
    r = grade(load_assignment("vae"), vae_submission)
    assert r.score == r.max_score == 30
    assert sum(t.max_score for t in answer_tests(r)) == 10


def test_a_broken_answers_file_costs_only_the_answers(vae_submission):
    path = vae_submission / "vae_answers.yaml"
    path.write_text(path.read_text().replace("answer: [A, B]  # SOLUTION", "answer: [A, B"))
    r = grade(load_assignment("vae"), vae_submission)
    assert r.score == 20
    assert all("vae_answers.yaml line" in t.output for t in answer_tests(r))


def test_missing_answers_file_and_one_wrong_answer(vae_submission):
    a = load_assignment("vae")
    path = vae_submission / "vae_answers.yaml"
    path.write_text(path.read_text().replace('answer: "|theta|"  # SOLUTION', "answer: 2*theta"))
    r = grade(a, vae_submission)
    assert r.score == 30 - 1.25
    assert [t.name for t in r.tests if not t.passed and not t.manual] == ["answers: 2.2d W(P, Q)"]
    path.unlink()
    r = grade(a, vae_submission)
    assert r.score == 20 and all("vae_answers.yaml is missing" in t.output for t in answer_tests(r))


def test_check_validates_the_format_only(vae_submission):
    from grader.app.cli import main

    shutil.copy(STARTER_DIR / "vae" / "vae_answers.yaml", vae_submission / "vae_answers.yaml")
    r = grade(load_assignment("vae"), vae_submission, public_only=True)
    fmt = answer_tests(r)
    assert len(fmt) == 1 and fmt[0].passed and "not answered yet: 1.4a" in fmt[0].hint
    assert main(["check", "--assignment", "vae", str(vae_submission)]) in (0, 1)   # 1: a code check failed

"""assignment.yaml validation and point totals."""
import pytest

from grader.config import ConfigError, load_assignment, parse_assignment

MINIMAL = {"name": "x", "title": "t", "module": "m.py", "required_files": ["m.py"],
           "parts": [{"name": "1", "function": "f", "probe": "gan_loss",
                      "tests": [{"name": "n", "check": "gan.scalars"}]}]}


def test_gan_points_match_the_course():
    a = load_assignment("gan")
    # CS236 HW3 is 100 points (35 of them programming); problem 6 adds 30 (loss_minimax and
    # the UW-Madison comparisons), problem 7 (creative adversarial networks) 10 and a bonus.
    assert a.total_points == 140
    assert a.auto_points == 48      # 45 for the code, 3 for gan_answers.yaml
    assert sum(m.points for m in a.manual if not m.bonus) == 92
    assert [m.name[:3] for m in a.manual if m.bonus] == ["7.2"]


@pytest.mark.parametrize("name,total,auto", [("gan1d", 60, 20), ("vae", 100, 30)])
def test_notebook_assignment_points_match_the_course(name, total, auto):
    a = load_assignment(name)
    assert (a.total_points, a.auto_points) == (total, auto)


def test_unknown_key_is_named():
    bad = dict(MINIMAL, pionts=3)
    with pytest.raises(ConfigError, match="unknown key.*pionts"):
        parse_assignment(bad, "a.yaml")


def test_unknown_key_in_a_test_is_named():
    bad = dict(MINIMAL, parts=[dict(MINIMAL["parts"][0], tests=[{"name": "n", "check": "c", "hidden": True}])])
    with pytest.raises(ConfigError, match=r"parts\[0\]\.tests\[0\].*hidden"):
        parse_assignment(bad, "a.yaml")


def test_missing_key_is_named():
    bad = {k: v for k, v in MINIMAL.items() if k != "module"}
    with pytest.raises(ConfigError, match="missing key.*module"):
        parse_assignment(bad, "a.yaml")


def test_visibility_defaults():
    a = parse_assignment(MINIMAL, "a.yaml")
    assert a.parts[0].tests[0].visibility == "after_published"


def test_unknown_assignment_lists_the_available_ones():
    with pytest.raises(ConfigError, match="available: .*gan"):
        load_assignment("nope")


def test_every_check_in_every_assignment_is_registered():
    from grader import checks
    from grader.config import available

    for name in available():
        for part in load_assignment(name).parts:
            for t in part.tests:
                assert checks.get(t.check) is not None, f"{name}: {t.check} is not registered"

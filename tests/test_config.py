"""assignment.yaml and the assignment folder: points, and every kind of mistake caught when it loads."""
import shutil

import pytest
import yaml

from grader.engine.assignment import available, load_assignment
from grader.engine.config import ConfigError, parse_assignment, reference_table
from grader.engine.paths import REPO_ROOT

MINIMAL = {"name": "x", "title": "t", "module": "m.py", "required_files": ["m.py"],
           "parts": [{"name": "1", "function": "f", "probe": "loss",
                      "tests": [{"name": "n", "check": "scalars"}]}]}


def test_gan_points_match_the_course():
    a = load_assignment("gan")
    # CS236 HW3 is 100 points (35 of them programming); problem 6 adds 30 (loss_minimax and
    # the UW-Madison comparisons), problem 7 (creative adversarial networks) 10 and a bonus.
    assert a.total == a.total_points == 140
    assert a.auto_points == 48      # 45 for the code, 3 for gan_answers.yaml
    assert sum(m.points for m in a.manual if not m.bonus) == 92
    assert [m.name[:3] for m in a.manual if m.bonus] == ["7.2"]


@pytest.mark.parametrize("name,total,auto", [("gan1d", 60, 20), ("vae", 100, 30), ("gan_split", 100, 35)])
def test_other_assignments_points_match_the_course(name, total, auto):
    a = load_assignment(name)
    assert (a.total, a.auto_points) == (total, auto)


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


def test_hidden_tests_are_visible_when_submitted_unless_the_assignment_says_otherwise():
    """The statements promise the comparison "when you submit"."""
    assert parse_assignment(MINIMAL, "a.yaml").parts[0].tests[0].visibility == "visible"
    later = parse_assignment(dict(MINIMAL, hidden_visibility="after_published"), "a.yaml")
    assert later.parts[0].tests[0].visibility == "after_published"


def test_unknown_assignment_lists_the_available_ones():
    with pytest.raises(ConfigError, match="available: .*gan"):
        load_assignment("nope")


def test_every_assignment_loads_with_all_its_checks():
    for name in available():
        a = load_assignment(name)
        for part in a.parts:
            for t in part.tests:
                assert t.check in a.checks, f"{name}: {t.check}"


def test_the_reference_table_in_the_docs_is_current():
    assert reference_table() in (REPO_ROOT / "docs" / "authoring.md").read_text()


# ------------------------------------------------------------------ a broken folder fails at load time


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A course repository holding one assignment made by `grader new`."""
    from grader.builders.scaffold import create

    root = tmp_path_factory.mktemp("course")
    (root / "assignments").mkdir()
    (root / "solutions").mkdir()
    create("toy", root)
    return root


def _broken(course, tmp_path, edit):
    """A copy of the course with ``edit(folder, config)`` applied; returns the assignments root."""
    root = tmp_path / "course"
    shutil.copytree(course, root)
    folder = root / "assignments" / "toy"
    config = yaml.safe_load((folder / "assignment.yaml").read_text())
    edit(folder, config)
    (folder / "assignment.yaml").write_text(yaml.safe_dump(config))
    return root / "assignments"


def _test(config, **changes):
    config["parts"][0]["tests"][0].update(changes)


def _replace(folder, file, old, new):
    path = folder / file
    path.write_text(path.read_text().replace(old, new))


MISTAKES = {
    "probe kind": (lambda f, c: c["parts"][0].update(probe="log_densty"),
                   r"assignment.yaml: parts\[0\] \(1\)\.probe: no probe kind 'log_densty'"),
    "check id": (lambda f, c: _test(c, check="shaep"),
                 r"parts\[0\] \(1\)\.tests\[0\] .*\.check: no check 'shaep'"),
    "hidden check in a public test": (lambda f, c: _test(c, check="value"),
                                      r"tests\[0\].*public, but check 'value' is hidden"),
    "output key a check reads": (lambda f, c: _replace(f, "checks.py", '"grad_mu")', '"grad_sigma")'),
                                 r"check 'shape' reads grad_sigma, which probe 'toy.log_density' does not declare"),
    "check on another probe's outputs": (lambda f, c: _replace(f, "checks.py", 'probe="log_density"', 'probe="train"'),
                                         r"check 'shape' reads the outputs of probe 'train', but this part runs"),
    "negative points": (lambda f, c: c["parts"][0]["tests"][1].update(points=-2),
                        r"parts\[0\]\.tests\[1\]\.points is negative"),
    "points that are not numbers": (lambda f, c: c["parts"][0]["tests"][1].update(points="ten"),
                                    r"parts\[0\]\.tests\[1\]\.points: expected a number"),
    "total": (lambda f, c: c.update(total_points=12),
              r"total_points is 12 but the parts and manual parts add up to 10"),
    "name and folder": (lambda f, c: c.update(name="other"), r"name: 'other' must be the folder's name, 'toy'"),
    "student file": (lambda f, c: c.update(module="densty.py"), r"module: .*starter/toy/densty.py does not exist"),
    "used assignment": (lambda f, c: c.update(uses=["gan"]), r"uses\[0\]: no assignment 'gan'"),
    "answers item": (lambda f, c: (c.update(answers="toy_answers.yaml"),
                                   c["parts"].append({"name": "2", "function": "answers", "probe": "answers", "tests": [
                                       {"name": "a", "check": "answers.item", "args": {"item": "9z"}}]})),
                     r"answers: .*toy_answers.yaml does not exist|cannot be read"),
    "probe module that does not import": (lambda f, c: _replace(f, "probes.py", "import numpy as np", "import numpyy"),
                                          r"probes.py: does not import \(ModuleNotFoundError"),
    "probe schema": (lambda f, c: _replace(f, "probes.py", 'Out(kind="shape", of="value")', 'Out(kind="shape", of="valeu")'),
                     r"probes.py: does not import .*describes 'valeu', which it does not declare"),
}


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_a_broken_assignment_fails_when_it_loads_naming_the_file_and_key(course, tmp_path, mistake):
    from grader.engine.assignment import load

    edit, message = MISTAKES[mistake]
    root = _broken(course, tmp_path, edit)
    with pytest.raises(ConfigError, match=message):
        load("toy", root)


def test_the_scaffolded_assignment_loads_and_is_never_blamed_on_students(course):
    from grader.engine.assignment import load

    a = load("toy", course / "assignments")
    assert a.total == 10 and set(a.checks) >= {"toy.shape", "toy.value"}

"""The current course version of the GAN homework (gan_split): one function per loss, each graded on its
own loss with gan's diagnoses; a file written for the other version is told where it belongs."""
import pytest

from conftest import REFERENCE_GAN, shown, write_gan
from grader.engine.assignment import load_assignment
from grader.engine.grade import grade
from grader.engine.paths import REPO_ROOT

EXAMPLES = REPO_ROOT / "assignments" / "gan_split" / "examples"
SPLIT = (REPO_ROOT / "solutions" / "gan_split" / "codebase" / "gan.py").read_text()


@pytest.fixture(scope="module")
def split():
    return load_assignment("gan_split")


def _failed(result, function):
    return [shown(t) for t in result.tests if t.tags == [function] and not t.passed]


@pytest.mark.parametrize("example,score", [("ada_correct", 35), ("ben_minimax_generator", 30),
                                           ("cleo_older_course_version", 0), ("dora_starter_untouched", 0)])
def test_the_examples_grade_as_intended(split, example, score):
    r = grade(split, EXAMPLES / example)
    assert r.score == score, [shown(t) for t in r.tests if not t.passed and not t.manual][:3]


def test_each_function_is_graded_on_its_own_loss_with_the_gan_diagnosis(split):
    r = grade(split, EXAMPLES / "ben_minimax_generator")
    msg, stability = _failed(r, "loss_nonsaturating_g")   # a wrong loss loses its stability point too
    assert "your generator loss equals the minimax loss" in msg
    assert "not judged until g_loss is right" in stability
    assert not _failed(r, "loss_nonsaturating_d")


def test_the_reference_gets_full_marks_and_the_penalty_without_create_graph_is_named(split, tmp_path):
    assert grade(split, write_gan(tmp_path / "ref", SPLIT)).score == 35
    src = SPLIT.replace("x_r, create_graph=True)", "x_r)")
    r = grade(split, write_gan(tmp_path / "nocg", src))
    assert r.score == 25
    assert any("create_graph=True" in m for m in _failed(r, "loss_wasserstein_gp_d"))


def test_a_file_of_the_other_version_is_told_which_assignment_it_fits(split, gan_assignment, tmp_path):
    old = grade(split, write_gan(tmp_path / "old", REFERENCE_GAN))
    assert old.score == 0
    assert all("the functions of the gan assignment" in m and "--assignment gan" in m
               for m in _failed(old, "loss_nonsaturating_d"))
    new = grade(gan_assignment, write_gan(tmp_path / "new", SPLIT))
    assert all("the functions of the gan_split assignment" in m for m in _failed(new, "loss_nonsaturating"))


def test_grader_check_finds_the_split_version_from_its_folder(capsys):
    from grader.app.cli import main

    assert main(["check", str(REPO_ROOT / "starter" / "gan_split")]) == 1   # the untouched starter fails
    out = capsys.readouterr().out
    assert "grader check: gan_split" in out and "loss_wasserstein_gp_g" in out


@pytest.mark.parametrize("fake_term", ["torch.log(1 - torch.sigmoid(d(x_fake)))", "torch.log1p(-torch.sigmoid(d(x_fake)))"])
def test_a_right_but_unstable_loss_loses_only_its_stability_point(split, tmp_path, fake_term):
    """Stability is its own test: the naive form keeps the value points and is told the fix."""
    src = SPLIT.replace("F.logsigmoid(-d(x_fake)).mean()", f"{fake_term}.mean()", 1)
    assert src != SPLIT
    r = grade(split, write_gan(tmp_path / "naive", src))
    assert r.score == 34
    [lost] = [t for t in r.tests if t.tags == ["loss_nonsaturating_d"] and t.max_score and not t.passed]
    assert "stable" in lost.name and lost.max_score == 1
    assert "right at moderate logits" in lost.output and "F.binary_cross_entropy_with_logits" in lost.output


def _split_batches() -> list[list]:
    from catalogue import batches
    from gan_variants import SPLIT_VARIANTS

    return batches(SPLIT_VARIANTS)


@pytest.mark.parametrize("batch", _split_batches(), ids=["+".join(v.name for v in b) for b in _split_batches()])
def test_the_gan_catalogue_grades_the_same_one_loss_at_a_time(split, tmp_path, batch):
    """Each gan variant, as two one-loss functions: the d function passes its value test iff the pair's d_loss
    does, the g function likewise, with the same message; the score is 35 less the points of failed tests."""
    from gan_variants import SPLIT_OF, apply_split

    r = grade(split, write_gan(tmp_path / "sub", apply_split(SPLIT, batch)))
    lost = 0.0
    for v in batch:
        for n, name in zip("dg", SPLIT_OF[v.function]):
            right = getattr(v, n)
            for t in (t for t in r.tests if t.tags == [name] and t.max_score):
                want = right and not ("stable" in t.name and n in v.unstable)
                assert t.passed == want, f"{v.name} as {name}: {t.name} passed={t.passed}: {shown(t)}"
                lost += 0 if want else t.max_score
                if not t.passed and v.says and ("stable" not in t.name or n in v.unstable):
                    assert v.says in shown(t), f"{v.name} as {name}: expected {v.says!r} in {shown(t)!r}"
    assert r.score == 35 - lost

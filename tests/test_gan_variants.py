"""Every variant in the catalogue is graded as intended, and only its own function loses points."""
import pytest

from catalogue import batches
from conftest import REFERENCE_GAN, by_function, write_gan
from gan_variants import VARIANTS, apply
from grader.engine.grade import grade

BATCHES = batches(VARIANTS)


VALUE = {"d_loss value and gradient": "d", "d_loss value and gradient (with penalty)": "d",
         "g_loss value and gradient": "g"}
STABLE = {"d_loss stable: finite at logits of +-200": "d", "g_loss stable: finite at logits of +-200": "g"}


def expected_pass(v, test: str) -> bool | None:
    """Whether variant ``v`` (None: the reference) passes a hidden test; None for the public ones."""
    if test in VALUE:
        return v is None or getattr(v, VALUE[test])
    if test in STABLE:
        loss = STABLE[test]
        return v is None or (getattr(v, loss) and loss not in v.unstable)
    return None


@pytest.mark.parametrize("batch", BATCHES, ids=["+".join(v.name for v in b) for b in BATCHES])
def test_variant_batch(batch, gan_assignment, tmp_path):
    """Each variant passes exactly its expected value and stability tests, with its message; the score is
    the total less the points of the tests it fails (a stability test costs its own points only)."""
    sub = write_gan(tmp_path / "sub", apply(REFERENCE_GAN, batch))
    result = grade(gan_assignment, sub)
    tests = by_function(result)
    changed = {v.function: v for v in batch}
    expected = 0.0
    for t in result.tests:
        if t.manual or t.tags == ["answers"]:
            continue
        v = changed.get(t.tags[0])
        test = t.name.partition(": ")[2]
        want = expected_pass(v, test)
        if want is None:
            continue
        passed, text = tests[t.tags[0]][test]
        assert passed == want, f"{v.name if v else t.tags[0]}: {test} passed={passed}: {text}"
        if not passed and test in VALUE or (test in STABLE and v is not None and STABLE[test] in v.unstable):
            assert v.says in text, f"{v.name}: expected {v.says!r} in {text!r}"
        expected += t.max_score if want else 0.0
    assert result.score == expected
    assert all(STABLE.keys() <= tests[f].keys() or f == "loss_wasserstein_gp" for f in tests)


def test_catalogue_covers_every_function_both_ways():
    for fn in {v.function for v in VARIANTS}:
        assert any(v.d and v.g and not v.unstable for v in VARIANTS if v.function == fn), f"no correct variant of {fn}"
        assert any(not (v.d and v.g) for v in VARIANTS if v.function == fn), f"no wrong variant of {fn}"
    assert any(v.unstable for v in VARIANTS), "no variant that is right but unstable"

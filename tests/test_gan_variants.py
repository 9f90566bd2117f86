"""Every variant in the catalogue is graded as intended, and only its own function loses points."""
import pytest

from catalogue import batches
from conftest import REFERENCE_GAN, by_function, write_gan
from gan_variants import VARIANTS, apply
from grader.grade import grade

BATCHES = batches(VARIANTS)


@pytest.mark.parametrize("batch", BATCHES, ids=["+".join(v.name for v in b) for b in BATCHES])
def test_variant_batch(batch, gan_assignment, tmp_path):
    sub = write_gan(tmp_path / "sub", apply(REFERENCE_GAN, batch))
    result = grade(gan_assignment, sub)
    tests = by_function(result)
    changed = {v.function: v for v in batch}
    for function, results in tests.items():
        d_pass = results["d_loss value and gradient" if function != "loss_wasserstein_gp"
                         else "d_loss value and gradient (with penalty)"]
        g_pass = results["g_loss value and gradient"]
        v = changed.get(function)
        if v is None:  # untouched reference functions keep full marks
            assert d_pass[0] and g_pass[0], (function, d_pass, g_pass)
            continue
        assert d_pass[0] == v.d, f"{v.name}: d_loss passed={d_pass[0]}: {d_pass[1]}"
        assert g_pass[0] == v.g, f"{v.name}: g_loss passed={g_pass[0]}: {g_pass[1]}"
        messages = [m for ok, m in (d_pass, g_pass) if not ok]
        assert all(v.says in m for m in messages), f"{v.name}: expected {v.says!r} in {messages}"
    expected = sum(t.max_score for t in result.tests if not t.manual and t.tags != ["answers"]) - sum(
        (5 if not v.d else 0) * (2 if v.function == "loss_wasserstein_gp" else 1) + (5 if not v.g else 0)
        for v in batch)
    assert result.score == expected


def test_catalogue_covers_every_function_both_ways():
    for fn in {v.function for v in VARIANTS}:
        assert any(v.d and v.g for v in VARIANTS if v.function == fn), f"no correct variant of {fn}"
        assert any(not (v.d and v.g) for v in VARIANTS if v.function == fn), f"no wrong variant of {fn}"

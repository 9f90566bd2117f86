"""Which term of a GAN loss is wrong, and how: worked out from how the loss depends on each logit.

The probe records, for every call of the discriminator, its logits h and the
gradient of each loss with respect to them. Telling the calls' images apart
(the real batch, the fakes of each draw, interpolates) splits a loss into its
terms: the real-sample term, the fake-sample term, the penalty. For each term
the student's gradient is set against the reference's, evaluated on the same
draws and so on the same logits:

* proportional: right function of the logit, but the sign or scale differs
  (flipped, a sum instead of a mean, half, ...);
* not proportional: a different function of the logit, named when it is a
  familiar one (log D, log(1 - D), logsigmoid(1 - h), D itself, the raw logit);
* zero on one side only: a missing or an extra term.

When the logit terms agree and the value does not, the difference is the
penalty's; it is compared with the penalty computed other ways (per pixel,
over the whole batch, squared, summed, one-sided) and with other weights.
Nothing here is a list of known wrong answers: any loss is described by the
same few words.
"""
from __future__ import annotations

import numpy as np

from grader.engine.compare import fmt

from .checks import TINY, Terms


def _sigmoid(h: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(h / 2))


# familiar functions of a logit h, by their derivative in h (what a loss term's gradient is made of)
FUNCTIONS = (
    ("log D = logsigmoid(h)", lambda h: _sigmoid(-h)),
    ("log(1 - D) = logsigmoid(-h)", lambda h: -_sigmoid(h)),
    ("logsigmoid(1 - h)", lambda h: -_sigmoid(h - 1)),
    ("D = sigmoid(h)", lambda h: _sigmoid(h) * _sigmoid(-h)),
    ("the raw logit h", lambda h: np.ones_like(h)),
)
FIT = 1e-3          # relative residual under which a gradient is taken to be a multiple of another


def _multiple(s: np.ndarray, r: np.ndarray) -> float | None:
    """c with s = c * r (to FIT), or None."""
    rr = float(r @ r)
    if rr < TINY:
        return None
    c = float(s @ r) / rr
    return c if np.linalg.norm(s - c * r) <= FIT * max(np.linalg.norm(s), np.linalg.norm(c * r)) + TINY else None


def describe(h: np.ndarray, grad: np.ndarray) -> str | None:
    """The term ``grad`` is the gradient of, in words (e.g. "-E[log D = logsigmoid(h)]"), if it is familiar."""
    b = h.size
    for name, derivative in FUNCTIONS:
        c = _multiple(grad, derivative(h))
        if c is not None and abs(c) > TINY:
            m = c * b                                  # per-example coefficient: 1 for a mean, b for a sum
            sign = "-" if m < 0 else ""
            m = abs(m)
            scale = ("E" if abs(m - 1) < 1e-3 else "sum over the batch of " if abs(m - b) < 1e-3 * b
                     else f"{fmt(m)} * E")
            return f"{sign}{scale}[{name}]"
    return None


def _ratio_words(c: float, b: int) -> str:
    if abs(c + 1) < 1e-3:
        return "has the wrong sign"
    if abs(c - b) < 1e-3 * b:
        return "sums over the batch instead of averaging (use .mean())"
    if abs(c + b) < 1e-3 * b:
        return "has the wrong sign and sums over the batch instead of averaging"
    if abs(c - 0.5) < 1e-3:
        return "is half what it should be"
    if abs(c - 2) < 1e-3:
        return "is twice what it should be"
    return f"is {fmt(c)} times what it should be"


def compare_terms(loss: str, student: Terms, reference: Terms, draw: int | None) -> str | None:
    """The terms of ``loss`` that differ from the reference's, and how; None when all agree.

    When every term is off by the same factor, the whole loss is named (a flipped
    sign, half the loss); otherwise the first term that differs.
    """
    names = {"real": "real-sample term", "fake": "fake-sample term" if loss == "d_loss" else "generator term"}
    ref_fake = next(iter(reference.fake.values()), None)
    pairs = [("real", student.real, reference.real),
             ("fake", student.fake.get(draw) if draw is not None else None, ref_fake)]
    problems: list[str] = []
    ratios: list[float | None] = []
    for kind, s, r in pairs:
        name = names[kind]
        s_grad = s[1] if s is not None else None
        r_grad = r[1] if r is not None else None
        s_on = s_grad is not None and np.linalg.norm(s_grad) > TINY
        r_on = r_grad is not None and np.linalg.norm(r_grad) > TINY
        if not s_on and not r_on:
            continue
        if not s_on:
            problems.append(f"the {name} of {loss} is missing: it should be {describe(r[0], r_grad) or 'there'}")
            ratios.append(None)
            continue
        if not r_on:
            what = describe(s[0], s_grad)
            problems.append(f"{loss} has a {name} it should not have" + (f" ({what})" if what else "")
                            + ("; the generator loss depends on the fake images only" if loss == "g_loss" else ""))
            ratios.append(None)
            continue
        if s[0].shape != r[0].shape or not np.allclose(s[0], r[0], atol=1e-4):
            continue   # not the same logits: nothing to compare term by term
        c = _multiple(s_grad, r_grad)
        ratios.append(c)
        if c is not None and abs(c - 1) < 1e-3:
            continue
        mine, theirs = describe(s[0], s_grad), describe(r[0], r_grad)
        if c is not None:
            problems.append(f"the {name} of {loss} {_ratio_words(c, s_grad.size)}"
                            + (f": yours is {mine}, it should be {theirs}" if mine and theirs else ""))
            continue
        hint = f"the {name} of {loss} is a different function of the logit h"
        if mine and theirs:
            hint += f": yours is {mine}, it should be {theirs}"
        if mine and "1 - h" in mine:
            hint += " (1 - D = 1 - sigmoid(h) = sigmoid(-h), so log(1 - D) is logsigmoid(-h), not logsigmoid(1 - h))"
        problems.append(hint)
    if len(ratios) > 1 and all(c is not None for c in ratios) and max(ratios) - min(ratios) < 1e-3 * max(
            1.0, abs(ratios[0])) and abs(ratios[0] - 1) >= 1e-3:
        b = (student.real or next(iter(student.fake.values())))[1].size
        return f"{loss} {_ratio_words(ratios[0], b)}: every term of it is off by the same factor"
    return problems[0] if problems else None


# penalties computed other ways than the reference's: (name in the message, key in the evaluation's terms)
PENALTY_VARIANTS = (
    ("takes the norm per pixel (grad.norm(2, dim=1) on a (B, 1, 28, 28) gradient is the size of each pixel's "
     "gradient); take it per example over all pixels: grad.reshape(B, -1).norm(dim=1)", "penalty_per_pixel"),
    ("takes one norm over the whole batch; take it per example (grad.reshape(B, -1).norm(dim=1))",
     "penalty_batch_norm"),
    ("uses the squared norm; it is (||grad||_2 - 1)^2", "penalty_squared_norm"),
    ("sums over the batch instead of averaging", "penalty_sum"),
    ("is one-sided (max(0, ||grad|| - 1)^2); WGAN-GP uses (||grad|| - 1)^2", "penalty_one_sided"),
)


def explain_penalty(penalty: float, terms: dict[str, float], lam: float) -> str | None:
    """The penalty part of the critic loss (its value minus the critic terms), compared with the penalty
    computed other ways; None when it is the right one."""
    right = terms.get("penalty")
    if right is None:
        return None
    if abs(penalty - lam * right) <= 1e-5 + 1e-4 * abs(lam * right):
        return None
    if abs(penalty) <= 1e-6 and right > 1e-6:
        return "the gradient penalty is missing"
    for words, key in PENALTY_VARIANTS:
        value = terms.get(key)
        if value is not None and abs(penalty - lam * value) <= 1e-5 + 1e-4 * abs(lam * value):
            return f"the penalty {words}"
    if right > 1e-6:
        weight = penalty / right
        if weight > 0 and abs(weight - round(weight, 1)) < 1e-3 * max(1.0, weight):
            return f"the penalty's weight lambda is {weight:.3g}; it should be {lam:g}"
    return "the gradient penalty differs from lambda * E[(||grad_x D(x_hat)||_2 - 1)^2]"

"""Public checks of the gan1d assignment: properties of the losses and of the training loop."""
from __future__ import annotations

import numpy as np

from grader.engine.checks import CheckContext, CheckResult, check

from .fixtures import KINDS, logit_cases

LOSS_KEYS = tuple(f"{c}_{what}" for c in ("typical", "extreme")
                  for what in ("value", "grad_real", "grad_fake", *(f"{k}_{x}" for k in KINDS
                                                                  for x in ("value", "grad_fake"))))
TRAIN_KEYS = ("g_steps", "d_steps", "both_steps", "idle_steps", "g_backward", "g_mixed", "d_mixed")

def _cases(ctx: CheckContext) -> list[tuple[str, str]]:
    """(value key, description) for every loss evaluation of this function."""
    if ctx.args["function"] == "discriminator_loss":
        return [(f"{c}_value", f"{c} logits") for c in ("typical", "extreme")]
    return [(f"{c}_{k}_value", f"kind={k!r}, {c} logits") for c in ("typical", "extreme") for k in KINDS]


@check("finite", probe="loss", reads=LOSS_KEYS + ("unknown_kind_raises",))
def finite(ctx: CheckContext) -> CheckResult:
    """Scalar, finite losses with finite gradients, also for logits as large as +-200."""
    a, problems = ctx.outputs, []
    for key, what in _cases(ctx):
        grads = [a[g] for g in a if g.startswith(key.removesuffix("value")) and "grad" in g]
        if a[key].size != 1:
            problems.append(f"{what}: the loss has {a[key].size} values; return a scalar (a batch mean)")
        elif not np.isfinite(a[key]).all() or not all(np.isfinite(g).all() for g in grads):
            problems.append(f"{what}: the loss or its gradient is not finite; compute log D and log(1 - D) "
                            "from the logits with F.logsigmoid(h) and F.logsigmoid(-h) (or F.softplus, or "
                            "F.binary_cross_entropy_with_logits), not torch.log(torch.sigmoid(h))")
        elif any(g.size == 0 for g in grads):
            problems.append(f"{what}: the loss does not depend on the logits (no gradient)")
    if ctx.args["function"] == "generator_loss" and a["unknown_kind_raises"][0] != 1:
        problems.append('generator_loss(d_fake, "wasserstein") should raise ValueError for an unknown kind')
    return CheckResult(not problems, "\n".join(problems))


@check("vanishing", probe="loss", reads=LOSS_KEYS)
def vanishing(ctx: CheckContext) -> CheckResult:
    """Where D(G(z)) -> 0 (logit <= -20) the minimax gradient vanishes and the non-saturating one does not."""
    a = ctx.outputs
    d_fake = logit_cases(ctx.args["seed"])["extreme"][1].reshape(-1).numpy()
    n = d_fake.size
    mm, ns = a["extreme_minimax_grad_fake"], a["extreme_nonsaturating_grad_fake"]
    if mm.size != n or ns.size != n:
        return CheckResult(False, "the generator loss has no gradient on extreme logits")
    # judged where the gradients are finite: a non-finite one is the stability test's to charge, once
    low = (d_fake <= -20) & np.isfinite(mm) & np.isfinite(ns)
    if not low.any():
        return CheckResult(False, "the generator loss has no finite gradient at logits <= -20")
    problems = []
    if np.max(np.abs(mm[low])) * n > 1e-6:
        problems.append("kind='minimax': the gradient should vanish where D(G(z)) -> 0 "
                        f"(got {np.max(np.abs(mm[low])) * n:.3g} per example at logits <= -20)")
    if np.min(np.abs(ns[low])) * n < 0.99:
        problems.append("kind='nonsaturating': the gradient should stay about 1 per example where D(G(z)) -> 0 "
                        f"(got {np.min(np.abs(ns[low])) * n:.3g})")
    return CheckResult(not problems, "\n".join(problems))


def _slopes(ctx: CheckContext) -> list[tuple[str, str, np.ndarray]]:
    """(loss, logit, d loss / d logit per example) on the typical logits, for every finite gradient."""
    a = ctx.outputs
    if ctx.args["function"] == "discriminator_loss":
        named = [("discriminator_loss", "real", a["typical_grad_real"]),
                 ("discriminator_loss", "fake", a["typical_grad_fake"])]
    else:
        named = [(f"generator_loss(kind={k!r})", "fake", a[f"typical_{k}_grad_fake"]) for k in KINDS]
    return [(n, which, g) for n, which, g in named if g.size and np.isfinite(g).all()]


@check("directions", probe="loss", reads=LOSS_KEYS)
def directions(ctx: CheckContext) -> CheckResult:
    """Each loss moves the right way: the generator's falls as D(G(z)) rises; the discriminator's falls as
    D(x) rises and as D(G(z)) falls. True of both kinds, so it reveals no reference value."""
    problems = []
    for name, which, g in _slopes(ctx):
        if name == "discriminator_loss" and which == "real" and np.any(g > 1e-12):
            problems.append("discriminator_loss rises as D(x) rises: it must score real samples high "
                            "(is a sign flipped, or are the labels swapped?)")
        elif name == "discriminator_loss" and which == "fake" and np.any(g < -1e-12):
            problems.append("discriminator_loss falls as D(G(z)) rises: it must score fakes low "
                            "(is a sign flipped, or are the labels swapped?)")
        elif name != "discriminator_loss" and np.any(g > 1e-12):
            problems.append(f"{name} rises as D(G(z)) rises: the generator must make its fakes look real "
                            "(is the sign flipped?)")
    return CheckResult(not problems, "\n".join(problems))


@check("batch_means", probe="loss", reads=LOSS_KEYS)
def batch_means(ctx: CheckContext) -> CheckResult:
    """Each loss is a batch mean: no example's logit weighs more than 1/B (the slope of log D or
    log(1 - D) in the logit is at most 1), so the loss does not grow with the batch."""
    for name, which, g in _slopes(ctx):
        if np.max(np.abs(g)) * g.size > 1 + 1e-3:
            return CheckResult(False, f"{name} weighs one {which} logit by {np.max(np.abs(g)):.3g}, more than "
                                      f"1/B = {1 / g.size:.3g}: it grows with the batch. Average over the "
                                      "batch (.mean()), do not sum")
    return CheckResult(True, "")


@check("train_structure", probe="train", reads=TRAIN_KEYS)
def train_structure(ctx: CheckContext) -> CheckResult:
    """k D updates and one G update per step that really change them, separate optimisers, and a generator
    update that uses the generator's loss alone."""
    a, args = ctx.outputs, ctx.args
    g, d, both, idle, g_back, g_mixed, d_mixed = (int(a[k][0]) for k in TRAIN_KEYS)
    steps, k = int(args["steps"]), int(args["k"])
    problems = []
    if idle:
        problems.append(f"{idle} optimiser steps changed no parameter (a learning rate of 0, or no gradient?)")
    if both:
        problems.append(f"{both} optimiser steps changed both G and D: use one optimiser per network, "
                        "and update D on the discriminator's loss only")
    if g == 0 and not both:
        problems.append("train never updates the generator")
    elif g != steps:
        problems.append(f"expected one generator update per step ({steps} for steps={steps}), saw {g}")
    if d != k * steps:
        problems.append(f"expected k={k} discriminator updates per generator step ({k * steps} in {steps} "
                        f"steps), saw {d}")
    if g_mixed:
        problems.append(f"{g_mixed} generator updates also used the gradient of the discriminator's loss: "
                        "detach x_fake in the discriminator's step (or zero G's gradients before its update)")
    if d_mixed:
        problems.append(f"{d_mixed} discriminator updates also used the gradient of another loss: zero D's "
                        "gradients (opt_d.zero_grad()) before each discriminator backward pass")
    if problems:
        return CheckResult(False, "\n".join(problems))
    note = ""
    if g_back > g:
        note = (f" Note: the discriminator's loss also reached G ({g_back} backward passes through G for "
                f"{g} generator updates). That is harmless here, since G's gradients are zeroed before its "
                "update, but it wastes a backward pass: detach x_fake in the discriminator's step.")
    return CheckResult(True, f"{d} discriminator and {g} generator updates, each on its own loss.{note}")

"""Public checks of the gan1d assignment: properties of the losses and of the training loop."""
from __future__ import annotations

import numpy as np

from grader.checks import CheckContext, CheckResult, check

from .fixtures import KINDS, logit_cases

LOSS_KEYS = tuple(f"{c}_{what}" for c in ("typical", "extreme")
                  for what in ("value", "grad_real", "grad_fake", *(f"{k}_{x}" for k in KINDS
                                                                  for x in ("value", "grad_fake"))))
TRAIN_KEYS = ("g_steps", "d_steps", "both_steps", "g_backward")

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
                            "from the logits with F.logsigmoid(h) and F.logsigmoid(-h), not "
                            "torch.log(torch.sigmoid(h))")
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
    low = d_fake <= -20
    n = d_fake.size
    mm, ns = a["extreme_minimax_grad_fake"], a["extreme_nonsaturating_grad_fake"]
    if mm.size != n or ns.size != n or not (np.isfinite(mm).all() and np.isfinite(ns).all()):
        return CheckResult(False, "the generator loss has no finite gradient on extreme logits")
    problems = []
    if np.max(np.abs(mm[low])) * n > 1e-6:
        problems.append("kind='minimax': the gradient should vanish where D(G(z)) -> 0 "
                        f"(got {np.max(np.abs(mm[low])) * n:.3g} per example at logits <= -20)")
    if np.min(np.abs(ns[low])) * n < 0.99:
        problems.append("kind='nonsaturating': the gradient should stay about 1 per example where D(G(z)) -> 0 "
                        f"(got {np.min(np.abs(ns[low])) * n:.3g})")
    return CheckResult(not problems, "\n".join(problems))


@check("train_structure", probe="train", reads=TRAIN_KEYS)
def train_structure(ctx: CheckContext) -> CheckResult:
    """One G update and k D updates per step, separate optimisers, no gradient from d_loss into G."""
    a, args = ctx.outputs, ctx.args
    g, d, both, g_back = (int(a[k][0]) for k in ("g_steps", "d_steps", "both_steps", "g_backward"))
    steps, k = int(args["steps"]), int(args["k"])
    problems = []
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
    if g_back > g and g > 0:
        problems.append(f"gradients reached the generator in {g_back} backward passes for {g} generator "
                        "updates: the discriminator's loss must not flow into G (detach x_fake, or build "
                        "it under torch.no_grad(), in the discriminator step)")
    return CheckResult(not problems, "\n".join(problems))

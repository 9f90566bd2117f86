"""Hidden checks of the gan1d assignment: loss values and gradients against the reference; the trained fit."""
from __future__ import annotations

from statistics import NormalDist

import numpy as np
import torch
import torch.nn.functional as F

from grader.engine import reference
from grader.engine.checks import CheckContext, CheckResult, check
from grader.engine.compare import close, close_vector, compare

from .checks import LOSS_KEYS
from .fixtures import KINDS, ProbeGenerator, logit_cases

MU, SIGMA = 4.0, 1.25
# Thresholds of the fit, calibrated on the reference (bench/calibrate_gan1d_fit.py; margins in docs/grading.md):
# over 12 seeds, 1000 steps give W1 0.12-0.57, mean 3.46-4.51 and std 1.00-1.45.
W1_MAX = 1.0
MEAN_TOL = 1.0            # |mean - 4|
STD_RANGE = (0.6, 1.6)    # std / 1.25


def _reference_values(ctx: CheckContext) -> dict[str, np.ndarray]:
    """The reference's value and gradients for every case, keyed like the probe's arrays."""
    ref = reference.load_module(ctx.assignment)
    out: dict[str, np.ndarray] = {}
    for case, (d_real, d_fake) in logit_cases(ctx.args["seed"]).items():
        r, f = d_real.clone().requires_grad_(True), d_fake.clone().requires_grad_(True)
        if ctx.args["function"] == "discriminator_loss":
            loss = ref.discriminator_loss(r, f)
            gr, gf = torch.autograd.grad(loss, (r, f))
            out.update({f"{case}_value": loss.detach().double().reshape(-1).numpy(),
                        f"{case}_grad_real": gr.double().reshape(-1).numpy(),
                        f"{case}_grad_fake": gf.double().reshape(-1).numpy()})
        else:
            for kind in KINDS:
                f = d_fake.clone().requires_grad_(True)
                loss = ref.generator_loss(f, kind)
                (gf,) = torch.autograd.grad(loss, f)
                out.update({f"{case}_{kind}_value": loss.detach().double().reshape(-1).numpy(),
                            f"{case}_{kind}_grad_fake": gf.double().reshape(-1).numpy()})
    return out


def _mistakes(function: str, case: str, seed: int) -> list[tuple[str, str, float]]:
    """(key, message, value) of typical mistakes on the 'typical' logits."""
    d_real, d_fake = (t.double() for t in logit_cases(seed)[case])
    ls = F.logsigmoid
    if function == "discriminator_loss":
        ref = (-ls(d_real).mean() - ls(-d_fake).mean()).item()
        return [(f"{case}_value", "the sign is flipped", -ref),
                (f"{case}_value", "real and fake are swapped", (-ls(-d_real).mean() - ls(d_fake).mean()).item()),
                (f"{case}_value", "it sums over the batch instead of averaging",
                 (-ls(d_real).sum() - ls(-d_fake).sum()).item()),
                (f"{case}_value", "it is half the loss: two means are added, not averaged", ref / 2)]
    mm, ns = ls(-d_fake).mean().item(), -ls(d_fake).mean().item()
    return [(f"{case}_minimax_value", "kind='minimax' returns the non-saturating loss", ns),
            (f"{case}_minimax_value", "kind='minimax' has the wrong sign", -mm),
            (f"{case}_nonsaturating_value", "kind='nonsaturating' returns the minimax loss", mm),
            (f"{case}_nonsaturating_value", "kind='nonsaturating' has the wrong sign", -ns)]


UNSTABLE = ("is right at moderate logits, but not finite where the logits reach +-20 to +-200, as a confident "
            "discriminator's do in training (the numerical stability policy of the statement): compute log D and "
            "log(1 - D) from the logits with F.logsigmoid(h) and F.logsigmoid(-h) (or F.softplus, or "
            "F.binary_cross_entropy_with_logits), not torch.log(torch.sigmoid(h)) or torch.log1p(-torch.sigmoid(h))")


@check("values", probe="loss", reads=LOSS_KEYS)
def values(ctx: CheckContext) -> CheckResult:
    """Every loss value and its gradient w.r.t. the logits equal the reference at typical logits (the
    extreme ones are the stability test's)."""
    if "values" in ctx.cache:
        return ctx.cache["values"]
    ctx.cache["values"] = result = _values(ctx)
    return result


def _values(ctx: CheckContext) -> CheckResult:
    a = ctx.outputs
    ref = {key: v for key, v in _reference_values(ctx).items() if key.startswith("typical_")}
    problems = []
    for key, expected in ref.items():
        got = a[key]
        if "grad" in key:
            if not close_vector(got, expected):
                problems.append(compare(key, got, expected) or f"{key} differs")
        elif (msg := compare(key, got, expected)) is not None:
            problems.append(msg)
    if not problems:
        return CheckResult(True, "values and gradients match the reference")
    hints = [m for key, m, v in _mistakes(ctx.args["function"], "typical", ctx.args["seed"])
             if a[key].size == 1 and close(a[key][0], v)]
    return CheckResult(False, "\n".join(problems[:4]), hint=hints[0] if hints else "")


@check("stable", probe="loss", reads=LOSS_KEYS)
def stable(ctx: CheckContext) -> CheckResult:
    """A loss that is right at typical logits is finite, with finite gradients, at logits of +-20 to +-200."""
    name = ctx.args["function"]
    if not values(ctx).passed:
        return CheckResult(False, f"not judged until {name} is right at typical logits (see its value test): "
                                  "the stability points go with a correct loss")
    a = ctx.outputs
    bad = [key for key in a if key.startswith("extreme_") and not np.all(np.isfinite(a[key]))]
    if bad:
        return CheckResult(False, f"{name} {UNSTABLE}", hint=f"not finite: {', '.join(sorted(bad)[:4])}")
    return CheckResult(True, f"{name} and its gradient stay finite at logits of +-20 to +-200")


def w1_to_target(samples: np.ndarray) -> float:
    """Wasserstein-1 distance between samples and N(MU, SIGMA^2), via sorted samples vs quantiles."""
    n = samples.size
    q = np.array([NormalDist(MU, SIGMA).inv_cdf((i + 0.5) / n) for i in range(n)])
    return float(np.mean(np.abs(np.sort(samples) - q)))


@check("fit", probe="train", reads=("g_params",))
def fit(ctx: CheckContext) -> CheckResult:
    """After the fixed budget of training, G's samples are close to N(4, 1.25^2): in Wasserstein-1, in
    location and in spread (so that a constant or wrongly scaled generator fails)."""
    g = ProbeGenerator()
    params = torch.from_numpy(ctx.outputs["g_params"]).float()
    torch.nn.utils.vector_to_parameters(params, g.parameters())
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        x = g(torch.rand(5000, 1, generator=gen)).reshape(-1).double().numpy()
    if not np.all(np.isfinite(x)):
        return CheckResult(False, "the trained generator outputs NaN or infinite values")
    w1, mean, std = w1_to_target(x), float(x.mean()), float(x.std())
    summary = (f"after {ctx.args['steps']} generator steps: samples have mean {mean:.3f} "
               f"(target {MU}), std {std:.3f} (target {SIGMA}); Wasserstein-1 distance {w1:.3f}")
    problems = []
    if w1 > W1_MAX:
        problems.append(f"the Wasserstein-1 distance should be at most {W1_MAX}")
    if abs(mean - MU) > MEAN_TOL:
        problems.append(f"the mean should be within {MEAN_TOL} of {MU}")
    if not STD_RANGE[0] <= std / SIGMA <= STD_RANGE[1]:
        problems.append(f"the spread should be {STD_RANGE[0]:g} to {STD_RANGE[1]:g} times {SIGMA} "
                        + ("(a generator that ignores its noise gives a constant)" if std < 0.1 else ""))
    if not problems:
        return CheckResult(True, summary)
    return CheckResult(False, summary + "; " + "; ".join(problems) + ".",
                       hint="check the signs of the losses and that the generator is updated on generator_loss")

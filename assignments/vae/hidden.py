"""Hidden checks for ``vae``: the reference notebook on the student's own draws.

The reference functions draw with torch.randn / randn_like / bernoulli; the
student's draws (recovered from what reached the probe model's decoder and
encoder) are replayed into those calls, and values and the gradients that
training uses are compared.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from grader.engine import reference
from grader.engine.checks import CheckContext, CheckResult, check
from grader.engine.compare import allclose, close, close_vector, compare

from .checks import (
    IWAE_KEYS,
    KL_KEYS,
    PHASE_KEYS,
    UNSTABLE,
    calls,
    iwae_draw_problem,
    iwae_props,
    iwae_samples,
    kl_props,
    log_bernoulli,
    log_normal,
    posterior,
    sleep_props,
    wake_props,
)
from .fixtures import BATCH, LATENT, kl_cases, make_images, make_model

LOG_2PI_TERM = 0.5 * LATENT * math.log(2 * math.pi)


def _ref(ctx: CheckContext):
    return reference.load_module(ctx.assignment)


def _grads(loss: torch.Tensor, params: list) -> np.ndarray:
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.cat([torch.zeros(p.numel()) if g is None else g.reshape(-1)
                      for p, g in zip(params, grads)]).double().numpy()


_close = close


def _requires(public, ctx: CheckContext) -> CheckResult | None:
    """A value check first needs the function's public properties: replaying a wrong draw (z = mu,
    one noise for all k) or a loss that trains the wrong network would otherwise look right."""
    res = public(ctx)
    return None if res.passed else CheckResult(False, res.message)


@check("kl_values", probe="kl", reads=KL_KEYS)
def kl_values(ctx: CheckContext) -> CheckResult:
    """KL values and gradients equal the closed form, on random and extreme inputs."""
    if (failed := _requires(kl_props, ctx)) is not None:   # a zero or negative KL: say why, not just numbers
        return failed
    if ctx.outputs["random_value"].size != kl_cases(ctx.args["seed"])["random"][0].shape[0]:
        return CheckResult(False, "expected one KL per example")
    a, problems, hint = ctx.outputs, [], None
    for case, (mu, logvar) in kl_cases(ctx.args["seed"]).items():
        m, lv = mu.clone().requires_grad_(True), logvar.clone().requires_grad_(True)
        kl = _ref(ctx).gaussian_kl(m, lv)
        g_mu, g_lv = torch.autograd.grad(kl.sum(), (m, lv))
        got = a[f"{case}_value"]
        if got.size != kl.numel():
            return CheckResult(False, f"returned {got.size} values for a batch of {kl.numel()}; expected one KL "
                               "per example, shape (B,)")
        for name, g, e in ((f"{case} KL", got, kl.detach()), (f"{case} dKL/dmu", a[f"{case}_grad_mu"], g_mu),
                           (f"{case} dKL/dlogvar", a[f"{case}_grad_logvar"], g_lv)):
            msg = compare(name, g, e.double().reshape(-1).numpy())
            if msg:
                problems.append(msg)
        if case == "random" and problems:
            mu64, lv64 = mu.double(), logvar.double()
            ref = kl.detach().double().numpy()
            catalogue = [
                ("the factor 1/2 is missing", 2 * ref),
                ("logvar is used as log sigma, not log sigma^2", (0.5 * ((2 * lv64).exp() + mu64 ** 2 - 1 - 2 * lv64).sum(1)).numpy()),
                ("it averages over the latent dimensions instead of summing", ref / mu.shape[1]),
                ("the sign is flipped", -ref),
            ]
            hint = next((m for m, v in catalogue if allclose(got, v)), None)
    if not problems:
        return CheckResult(True, "matches the closed form, also for tiny and huge variances")
    return CheckResult(False, "\n".join(problems[:4]), hint=hint or "")


@check("wake_values", probe="wake", reads=PHASE_KEYS)
def wake_values(ctx: CheckContext) -> CheckResult:
    """The wake loss and its decoder gradient equal the reference on the student's z."""
    if (failed := _requires(wake_props, ctx)) is not None:
        return failed
    a, seed = ctx.outputs, ctx.args["seed"]
    zs = [z for z in calls(a, "decode_in") if z.shape == (BATCH, LATENT)]
    if a["value"].size != 1 or not zs:
        return CheckResult(False, "see the public checks: the loss must be a scalar computed from z ~ q(z|x)")
    x = make_images(seed)
    z = torch.from_numpy(zs[0]).float()
    mu, logvar = posterior(seed, x)
    eps = (z - mu) / (0.5 * logvar).exp()
    model = make_model(seed)
    with reference.replay(randn_like=[eps]):
        loss = _ref(ctx).wake_loss(model, x)
    ref_grad = _grads(loss, model.decoder_parameters())
    value = float(a["value"][0])
    with torch.no_grad():
        prior_term = float(log_normal(z, torch.zeros_like(z), torch.zeros_like(z)).mean())
    accepted = (loss.item(), loss.item() - prior_term)   # -log p(x|z), or -log p(x, z): same gradient
    if any(_close(value, v) for v in accepted) and close_vector(a["dec_grad"], ref_grad):
        return CheckResult(True, "value and decoder gradient match the reference")
    msg = compare("wake loss", a["value"], np.asarray([loss.item()])) or "the decoder gradient differs from the reference"
    catalogue = [("the log-likelihood is averaged over pixels instead of summed", loss.item() / 784),
                 ("the sign is flipped: minimise -log p(x|z)", -loss.item()),
                 ("it sums over the batch instead of averaging", loss.item() * BATCH)]
    hint = next((m for m, v in catalogue if _close(value, v)), None)
    return CheckResult(False, msg, hint=hint or "")


@check("sleep_values", probe="sleep", reads=PHASE_KEYS)
def sleep_values(ctx: CheckContext) -> CheckResult:
    """The sleep loss and its encoder gradient equal the reference on the student's dreams."""
    if (failed := _requires(sleep_props, ctx)) is not None:
        return failed
    a, seed, n = ctx.outputs, ctx.args["seed"], int(ctx.args.get("num_samples", 64))
    zs = [z for z in calls(a, "decode_in") if z.shape == (n, LATENT)]
    xs = [x for x in calls(a, "encode_in") if x.shape == (n, 784)]
    if a["value"].size != 1 or not zs or not xs:
        return CheckResult(False, "see the public checks: dream z ~ N(0, I) and x ~ p(x|z), then encode x")
    z, x = torch.from_numpy(zs[0]).float(), torch.from_numpy(xs[0]).float()
    model = make_model(seed)
    with reference.replay(randn=[z], bernoulli=[x]):
        loss = _ref(ctx).sleep_loss(model, n)
    ref_grad = _grads(loss, model.encoder_parameters())
    value = float(a["value"][0])
    accepted = (loss.item(), loss.item() - LOG_2PI_TERM)   # with or without the constant of log q
    if any(_close(value, v) for v in accepted) and close_vector(a["enc_grad"], ref_grad):
        return CheckResult(True, "value and encoder gradient match the reference")
    msg = compare("sleep loss", a["value"], np.asarray([loss.item()])) or "the encoder gradient differs from the reference"
    mu, logvar = posterior(seed, x)
    with torch.no_grad():
        std_normal = float(-log_normal(z, mu, torch.zeros_like(logvar)).mean())
    catalogue = [("the sign is flipped: minimise -log q(z|x)", -loss.item()),
                 ("log q(z|x) ignores the encoder's variance", std_normal),
                 ("it sums over the dreams instead of averaging", loss.item() * n)]
    hint = next((m for m, v in catalogue if _close(value, v)), None)
    return CheckResult(False, msg, hint=hint or "log q(z|x) must be evaluated at the z the dream was decoded from")


@check("iwae_values", probe="iwae", reads=IWAE_KEYS)
def iwae_values(ctx: CheckContext) -> CheckResult:
    """L_k per example equals the reference on the student's own k samples (k = 1 and 5)."""
    a, seed = ctx.outputs, ctx.args["seed"]
    if not all(np.all(np.isfinite(a[f"k{k}_value"])) and a[f"k{k}_value"].size == BATCH for k in (1, 5)):
        return _requires(iwae_props, ctx) or CheckResult(False, "L_k must be finite, one per example")
    if (why := iwae_draw_problem(ctx)) is not None:   # replayed into the reference, a wrong draw looks right
        return CheckResult(False, why)
    x = make_images(seed)
    mu, logvar = posterior(seed, x)
    problems, hint = [], None
    for k in (1, 5):
        z, why = iwae_samples(ctx, k)
        if why:
            return CheckResult(False, why)
        eps = (z - mu) / (0.5 * logvar).exp()
        with torch.no_grad(), reference.replay(randn=[eps]):
            ref = _ref(ctx).iwae_bound(make_model(seed), x, k).double().numpy()
        got = a[f"k{k}_value"]
        msg = compare(f"L_{k}", got, ref)
        if msg:
            problems.append(msg)
            with torch.no_grad():
                model = make_model(seed)
                zero = torch.zeros_like(z)
                log_lik = log_bernoulli(x, model.dec(z))
                log_w = (log_lik + log_normal(z, zero, zero) - log_normal(z, mu, logvar)).double()
                no_prior = (log_lik - log_normal(z, mu, logvar)).double()
            catalogue = [
                ("-log k is missing", ref + math.log(k)),
                ("it averages the log-weights (that is the ELBO, not L_k): use logsumexp", log_w.mean(0).numpy()),
                ("the prior term log p(z) is missing from the log-weights",
                 (torch.logsumexp(no_prior, 0) - math.log(k)).numpy()),
            ]
            hint = hint or next((m for m, v in catalogue if allclose(got, v)), None)
    if not problems:
        return CheckResult(True, "L_1 and L_5 match the reference on your samples")
    return CheckResult(False, "\n".join(problems), hint=hint or "")


def _stable(ctx: CheckContext, values, what: str) -> CheckResult:
    """A function that is right at moderate logits is also finite where the decoder's logits are a few hundred."""
    name = ctx.args["function"]
    if not values(ctx).passed:
        return CheckResult(False, f"not judged until {name} is right at moderate logits (see its value test): "
                                  "the stability points go with a correct loss")
    if ctx.outputs["value_extreme"][0] != 1:
        return CheckResult(False, f"{what} is right at moderate logits, but {UNSTABLE}")
    return CheckResult(True, f"{what} stays finite where the decoder's logits are a few hundred")


@check("wake_stable", probe="wake", reads=PHASE_KEYS)
def wake_stable(ctx: CheckContext) -> CheckResult:
    """The wake loss, right at moderate logits, is finite where the decoder's logits are a few hundred."""
    return _stable(ctx, wake_values, "the wake loss")


@check("iwae_stable", probe="iwae", reads=IWAE_KEYS)
def iwae_stable(ctx: CheckContext) -> CheckResult:
    """L_5, right at moderate logits, is finite where the decoder's logits are a few hundred."""
    return _stable(ctx, iwae_values, "L_5")

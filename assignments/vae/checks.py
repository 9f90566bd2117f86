"""Public checks of the vae assignment: properties that hold for any correct answer.

Also the parent-side helpers the hidden checks share: the recorded draws, the
probe model's q(z|x) on them, and the log densities (the formulas are in the
statement, so nothing here reveals the reference).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from grader.engine.checks import CheckContext, CheckResult, check
from grader.engine.compare import allclose

from .fixtures import BATCH, KS, LATENT, exact_log_px, kl_cases, make_images, make_model

KL_KEYS = tuple(f"{c}_{x}" for c in ("random", "extreme", "prior") for x in ("value", "shape", "grad_mu", "grad_logvar"))
PHASE_KEYS = ("value", "value_shape", "enc_grad", "enc_grad_ok", "dec_grad", "dec_grad_ok", "encode_in*", "decode_in*",
              "value_extreme")
IWAE_KEYS = (*(f"k{k}_value" for k in KS), "exact_value", *(f"k{k}_{n}_in*" for k in KS for n in ("decode", "encode")),
             "value_extreme")
UNSTABLE = ("not finite when the decoder's logits are a few hundred (the numerical stability policy of the "
            "statement): compute log p(x|z) from the logits, e.g. -F.binary_cross_entropy_with_logits(logits, x, "
            "reduction='none').sum(-1), or with F.logsigmoid / F.softplus, not from torch.sigmoid(logits)")
NOT_FINITE = ("L_{k} is not finite: the log-weights are about -500, so exp() underflows; "
              "compute torch.logsumexp(log_w, dim=0) - math.log(k)")
TRAIN_KEYS = ("dec_steps", "enc_steps", "both_steps", "idle_steps", "dec_lr_ok", "enc_lr_ok", "history_wake",
              "history_sleep")

# ------------------------------------------------------------------ shared helpers

def calls(arrays, prefix: str) -> list[np.ndarray]:
    out = []
    for i in range(8):
        if f"{prefix}{i}" not in arrays:
            break
        out.append(arrays[f"{prefix}{i}"])
    return out


def log_bernoulli(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    return -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)


def log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return -0.5 * (math.log(2 * math.pi) + logvar + (z - mu) ** 2 / logvar.exp()).sum(-1)


def posterior(seed: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """mu, logvar of the probe model's q(z|x), computed here in the parent."""
    with torch.no_grad():
        h = make_model(seed)
        return h.enc_mu(h.enc(x)), h.enc_logvar(h.enc(x))


def standardised(seed: int, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """eps = (z - mu(x)) / sigma(x): standard normal when z was drawn from q(z|x)."""
    mu, logvar = posterior(seed, x)
    return (z - mu) / (0.5 * logvar).exp()


# Bounds of the tests on draws: each statistic of n values from N(0, 1) lies within SIGMAS standard errors
# of its expectation but with probability of about 1e-6 or less, so a correct draw is not failed by chance.
SIGMAS = 5.0


def standard_normal_problem(eps: np.ndarray) -> str | None:
    """None when ``eps`` (n values) looks like n independent N(0, 1) draws, else how it does not.

    Mean, second moment (Wilson-Hilferty bounds for chi^2_n / n) and the share of negative values, each
    within SIGMAS standard errors: with n >= 128, U[0, 1) (all positive, second moment 1/3) and any
    scale off by a factor of 1.5 or more fail.
    """
    eps = np.asarray(eps, dtype=np.float64).reshape(-1)
    n = eps.size
    if n == 0 or not np.all(np.isfinite(eps)):
        return "no finite draw"
    m, m2, neg = float(eps.mean()), float(np.mean(eps ** 2)), float(np.mean(eps < 0))
    c = 2 / (9 * n)
    lo, hi = ((1 - c - SIGMAS * math.sqrt(c)) ** 3, (1 - c + SIGMAS * math.sqrt(c)) ** 3)
    if abs(m) > SIGMAS / math.sqrt(n) or not lo < m2 < hi or abs(neg - 0.5) > SIGMAS * 0.5 / math.sqrt(n):
        return f"mean {m:.2f}, standard deviation {math.sqrt(m2):.2f} (expected about 0 and 1)"
    return None


RAND = "torch.rand draws U[0, 1); the noise must be standard normal: torch.randn / torch.randn_like"


def _looks_uniform(u: np.ndarray) -> bool:
    """All of ``u`` in [0, 1) and spread over it: noise drawn with torch.rand."""
    return bool(u.size and np.all((u >= -1e-6) & (u <= 1 + 1e-6)) and standard_normal_problem(
        (u - 0.5) * math.sqrt(12)) is None)


def posterior_draw_problem(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> str | None:
    """None when ``z`` (..., B, J) looks like independent draws from q(z|x) = N(mu, diag exp(logvar)), else
    the mistake, named: the mean itself, one noise for the whole batch, U[0, 1) noise, or a scale other than
    sigma = exp(logvar / 2) (the variance, the log-variance, log sigma, none: the prior's draws).

    The probe's encoder has log sigma^2 near -4 and means away from 0, where these alternatives differ by
    factors of 2 or more (at log sigma^2 = 0 sigma, sigma^2 and 1 would coincide).
    """
    z, mu, logvar = z.double(), mu.double(), logvar.double()
    eps = ((z - mu) / (0.5 * logvar).exp()).reshape(-1, *mu.shape)   # (S, B, J)
    if float(eps.abs().max()) < 1e-3:   # float32 rounding only: no noise at all
        return "z is the mean itself: draw z = mu + sigma * eps with eps ~ N(0, I)"
    if mu.shape[0] > 1 and float((eps - eps[:, :1]).abs().max()) < 1e-3:
        return ("the same noise for every example of the batch: draw eps of shape (B, J), "
                "e.g. torch.randn_like(mu)")
    if standard_normal_problem(eps.numpy()) is None:
        return None
    if _looks_uniform(eps.numpy()):
        return RAND
    named = [
        ("the variance is used where the standard deviation belongs: z = mu + sigma^2 * eps; "
         "use sigma = exp(logvar / 2) (torch.distributions.Normal takes the standard deviation)",
         (z - mu) / logvar.exp()),
        ("the log-variance is used as the standard deviation: z = mu + logvar * eps; "
         "use sigma = exp(logvar / 2)", (z - mu) / logvar),
        ("log sigma is used as the standard deviation: z = mu + (logvar / 2) * eps; "
         "use sigma = exp(logvar / 2)", (z - mu) / (0.5 * logvar)),
        ("the noise is not scaled: z = mu + eps; use z = mu + sigma * eps, sigma = exp(logvar / 2)", z - mu),
        ("z is drawn from the prior N(0, I), not from q(z|x) = N(mu, sigma^2): use z = mu + sigma * eps", z),
    ]
    fits = [(abs(math.log(float((noise ** 2).mean()) + 1e-300)), message) for message, noise in named
            if standard_normal_problem(noise.numpy()) is None]
    if fits:
        return min(fits)[1]   # the scale that explains the draws best
    return f"the noise eps = (z - mu) / sigma does not look standard normal: {standard_normal_problem(eps.numpy())}"


def prior_draw_problem(z: np.ndarray) -> str | None:
    """None when ``z`` (n, J) looks like independent draws from N(0, I), else the mistake, named."""
    if z.size == 0 or not np.all(np.isfinite(z)):
        return "no finite draw"
    if np.max(np.abs(z)) < 1e-6:
        return "z is the prior's mean 0, not a draw: z = torch.randn(num_samples, model.latent_dim)"
    if z.shape[0] > 1 and np.max(np.abs(z - z[:1])) < 1e-6:
        return "the same z for every dream: draw z of shape (num_samples, J)"
    if standard_normal_problem(z) is None:
        return None
    if _looks_uniform(z):
        return RAND
    return f"z does not look standard normal: {standard_normal_problem(z)}"


def dream_problem(x: np.ndarray, logits: torch.Tensor) -> str | None:
    """None when the dreams ``x`` (n, 784) look like samples of Bernoulli(sigmoid(logits)), else the mistake.

    The log-likelihood of the dreams is compared with its expectation under Bernoulli sampling, in standard
    errors: the most likely pixels (p > 0.5, torch.round) score far above it, inverted probabilities far below.
    """
    if not np.all((x == 0) | (x == 1)):
        return ("the dreams must be binary samples x ~ Bernoulli(sigmoid(decode(z))) (torch.bernoulli), "
                "not the probabilities")
    h = logits.double()
    log_p, log_1mp = F.logsigmoid(h), F.logsigmoid(-h)
    p = log_p.exp()
    xt = torch.from_numpy(x).double()
    ll = float((xt * log_p + (1 - xt) * log_1mp).sum())
    expected = float((p * log_p + (1 - p) * log_1mp).sum())
    sd = math.sqrt(float((p * (1 - p) * h ** 2).sum())) + 1e-12
    score = (ll - expected) / sd
    if score > 2 * SIGMAS:
        return ("the dreams are the most likely pixels (p > 0.5, or torch.round), not samples: draw "
                "x ~ Bernoulli(sigmoid(decode(z))) with torch.bernoulli")
    if abs(score) > 2 * SIGMAS:
        return (f"the dreams are not Bernoulli(sigmoid(decode(z))) samples of the z they were dreamt from "
                f"(their log-likelihood is {score:.0f} standard errors from its expectation): "
                "x = torch.bernoulli(torch.sigmoid(model.decode(z)))")
    return None


IDENTICAL = "the k samples per example are identical: draw fresh noise for each of the k samples"


def _iwae_arrangements(ctx: CheckContext, k: int) -> tuple[list[torch.Tensor], str | None]:
    """The student's k * B codes arranged as (k, B, J) sample-major and example-major, or why not."""
    rows = [a.reshape(-1, LATENT) for a in calls(ctx.outputs, f"k{k}_decode_in") if a.shape[-1] == LATENT]
    if not rows:
        return [], "the decoder was never called: decode z ~ q(z|x) to get log p(x|z)"
    z = torch.from_numpy(np.concatenate(rows)).float()
    if z.shape[0] != k * BATCH:
        return [], (f"the decoder saw {z.shape[0]} latent codes for k={k} and a batch of {BATCH}; "
                    f"expected k * B = {k * BATCH}")
    return [z.reshape(k, BATCH, LATENT), z.reshape(BATCH, k, LATENT).transpose(0, 1)], None


def _iwae_draws(ctx: CheckContext, k: int) -> tuple[torch.Tensor | None, str | None]:
    """The student's samples as (k, B, J) in the arrangement that explains them best, and what is wrong with
    where they come from (None when they are k independent draws from q(z|x) per example)."""
    key = f"iwae_draws{k}"
    if key in ctx.cache:
        return ctx.cache[key]
    arrangements, why = _iwae_arrangements(ctx, k)
    if why:
        ctx.cache[key] = None, why
        return ctx.cache[key]
    mu, logvar = posterior(ctx.args["seed"], make_images(ctx.args["seed"]))
    found = []
    for z in arrangements:
        if k > 1 and float((z - z[0:1]).abs().max()) < 1e-7 and float((z - mu).abs().max()) > 1e-4:
            found.append((z, IDENTICAL))
        else:
            found.append((z, posterior_draw_problem(z, mu, logvar)))
    generic = "the noise eps = (z - mu) / sigma"
    best = next((f for f in found if f[1] is None), None) or next(
        (f for f in found if not f[1].startswith(generic)), found[0])
    ctx.cache[key] = best
    return best


def iwae_samples(ctx: CheckContext, k: int) -> tuple[torch.Tensor | None, str | None]:
    """The student's k samples per example as (k, B, J), or None and why they cannot be read."""
    z, why = _iwae_draws(ctx, k)
    return (z, None) if z is not None else (None, why)


def iwae_draw_problem(ctx: CheckContext) -> str | None:
    """None when, for k = 1 and 5, the samples are k independent draws from q(z|x) per example; else the
    mistake, named (identical samples, the mean itself, the variance for the standard deviation, ...)."""
    for k in KS:
        z, why = _iwae_draws(ctx, k)
        if why == IDENTICAL or z is None:
            return why
        if why:
            return f"the samples should be drawn from q(z|x): {why}"
    return None


# ------------------------------------------------------------------ checks

@check("kl_props", probe="kl", reads=KL_KEYS)
def kl_props(ctx: CheckContext) -> CheckResult:
    """One KL per example, finite, non-negative, zero at the prior only, with gradients."""
    a, problems = ctx.outputs, []
    for case, (mu, _) in kl_cases(ctx.args["seed"]).items():
        shape = tuple(int(s) for s in a[f"{case}_shape"])
        if shape != (mu.shape[0],):
            problems.append(f"returned shape {shape} for a batch of {mu.shape[0]}; expected ({mu.shape[0]},): "
                            "sum over the latent dimensions, one KL per example, no mean over the batch")
            break
        v = a[f"{case}_value"]
        if not np.all(np.isfinite(v)):
            problems.append(f"{case} inputs: not finite (tiny and huge variances must work: use logvar.exp())")
        elif np.any(v < -1e-5 * np.maximum(1, np.abs(v))):
            problems.append(f"{case} inputs: a KL divergence is negative ({v.min():.4g})")
        elif case == "prior" and np.max(np.abs(v)) > 1e-6:
            problems.append(f"KL(N(0, I) || N(0, I)) should be 0, got {np.max(np.abs(v)):.4g}")
        elif case == "random" and np.any(v <= 1e-6):
            problems.append(f"random inputs: the KL is {v.min():.4g} for a q that is not the prior; "
                            "KL(q || p) > 0 unless q = p")
        if a[f"{case}_grad_mu"].size == 0 or a[f"{case}_grad_logvar"].size == 0:
            problems.append("the KL must be differentiable in both mu and logvar")
    return CheckResult(not problems, "\n".join(dict.fromkeys(problems)))


def _phase_problems(a: dict, trains: str, frozen: str, hint: str) -> list[str]:
    problems = []
    if a["value"].size != 1:
        problems.append(f"the loss has shape {tuple(int(s) for s in a['value_shape'])}; return a scalar (a mean)")
    elif not np.isfinite(a["value"][0]):
        problems.append("the loss is not finite")
    if a[f"{trains[:3]}_grad_ok"][0] != 1 or not np.any(a[f"{trains[:3]}_grad"]):
        problems.append(f"the loss sends no gradient to the {trains}")
    if a[f"{frozen[:3]}_grad_ok"][0] == 1 and np.any(a[f"{frozen[:3]}_grad"]):
        problems.append(f"the loss sends gradient to the {frozen}: {hint}")
    return problems


@check("wake_props", probe="wake", reads=PHASE_KEYS)
def wake_props(ctx: CheckContext) -> CheckResult:
    """Scalar; trains the decoder only; z is a draw from q(z|x)."""
    a = ctx.outputs
    problems = _phase_problems(a, "decoder", "encoder", "detach z (the wake phase trains the decoder only)")
    zs = [z for z in calls(a, "decode_in") if z.shape == (BATCH, LATENT)]
    if not zs:
        problems.append(f"the decoder never received z of shape ({BATCH}, {LATENT}) for a batch of {BATCH}")
    else:
        mu, logvar = posterior(ctx.args["seed"], make_images(ctx.args["seed"]))
        why = posterior_draw_problem(torch.from_numpy(zs[0]), mu, logvar)
        if why:
            problems.append(f"z should be drawn from q(z|x): {why}")
    return CheckResult(not problems, "\n".join(problems))


@check("wake_finite", probe="wake", reads=("value_extreme",))
def wake_finite(ctx: CheckContext) -> CheckResult:
    """The wake loss is finite on a decoder whose logits are a few hundred (its points are the stability test's)."""
    if ctx.outputs["value_extreme"][0] != 1:
        return CheckResult(False, f"the wake loss is {UNSTABLE}")
    return CheckResult(True, "finite where the decoder's logits are a few hundred")


@check("sleep_props", probe="sleep", reads=PHASE_KEYS)
def sleep_props(ctx: CheckContext) -> CheckResult:
    """Scalar; trains the encoder only; z ~ N(0, I) and binary dreams x ~ Bernoulli(sigmoid(decode(z)))."""
    a, n = ctx.outputs, int(ctx.args.get("num_samples", 64))
    problems = _phase_problems(a, "encoder", "decoder",
                               "sample x without gradient (torch.bernoulli, or under torch.no_grad())")
    zs = [z for z in calls(a, "decode_in") if z.shape == (n, LATENT)]
    xs = [x for x in calls(a, "encode_in") if x.shape == (n, 784)]
    if not zs:
        problems.append(f"the decoder never received z of shape ({n}, {LATENT}) for num_samples={n}")
    elif (why := prior_draw_problem(zs[0])) is not None:
        problems.append(f"z should be drawn from the prior N(0, I): {why}")
    if not xs:
        problems.append(f"the encoder never received dreamed images of shape ({n}, 784)")
    elif zs:
        with torch.no_grad():
            logits = make_model(ctx.args["seed"]).decode(torch.from_numpy(zs[0]).float())
        if (why := dream_problem(xs[0], logits)) is not None:
            problems.append(why)
    return CheckResult(not problems, "\n".join(problems))


@check("iwae_props", probe="iwae", reads=IWAE_KEYS)
def iwae_props(ctx: CheckContext) -> CheckResult:
    """(B,) and finite; L_1 equals the ELBO on its own draw; L_k = log p(x) where that is exact; k independent
    draws (finiteness at extreme logits is the stability test's)."""
    a, seed, problems = ctx.outputs, ctx.args["seed"], []
    for k in KS:
        v = a[f"k{k}_value"]
        if v.size != BATCH:
            return CheckResult(False, f"iwae_bound returned {v.size} values for a batch of {BATCH}; expected "
                               "shape (B,), one bound per example")
        if not np.all(np.isfinite(v)):
            return CheckResult(False, NOT_FINITE.format(k=k))
    x = make_images(seed)
    z1, why = iwae_samples(ctx, 1)
    if why:
        problems.append(why)
    else:
        mu, logvar = posterior(seed, x)
        with torch.no_grad():
            model = make_model(seed)
            log_w = (log_bernoulli(x, model.dec(z1[0])) + log_normal(z1[0], torch.zeros_like(mu), torch.zeros_like(mu))
                     - log_normal(z1[0], mu, logvar)).double().numpy()
        if not allclose(a["k1_value"], log_w):
            problems.append("L_1 should equal the single-sample ELBO log p(x, z) - log q(z|x) on its draw "
                            f"(first example: got {a['k1_value'][0]:.3f}, expected {log_w[0]:.3f})")
    exact = exact_log_px(seed)
    if not allclose(a["exact_value"], exact):
        diff = float(np.mean(a["exact_value"] - exact))
        hint = " (that is log 5: subtract log k)" if abs(diff - math.log(5)) < 1e-2 else ""
        problems.append(f"on a model where log p(x) is exact, L_5 should equal log p(x); it is off by {diff:.4g}{hint}")
    if (why := iwae_draw_problem(ctx)) is not None:
        problems.append(why)
    return CheckResult(not problems, "\n".join(problems))


@check("iwae_finite", probe="iwae", reads=IWAE_KEYS)
def iwae_finite(ctx: CheckContext) -> CheckResult:
    """L_5 is finite on a decoder whose logits are a few hundred (its points are the stability test's)."""
    bad = [k for k in KS if not np.all(np.isfinite(ctx.outputs[f"k{k}_value"]))]
    if bad:
        return CheckResult(False, NOT_FINITE.format(k=bad[0]))
    if ctx.outputs["value_extreme"][0] != 1:
        return CheckResult(False, f"L_5 is {UNSTABLE}")
    return CheckResult(True, "finite where the decoder's logits are a few hundred")


@check("train_structure", probe="train", reads=TRAIN_KEYS)
def train_structure(ctx: CheckContext) -> CheckResult:
    """Per batch one decoder (wake) step and one encoder (sleep) step that really change them, separate
    optimisers; history per epoch."""
    a, n = ctx.outputs, int(ctx.args.get("batches", 3))
    dec, enc, both, idle = (int(a[k][0]) for k in ("dec_steps", "enc_steps", "both_steps", "idle_steps"))
    problems = []
    if idle:
        problems.append(f"{idle} optimiser steps changed no parameter (a learning rate of 0, or no gradient?)")
    if both:
        problems.append(f"{both} optimiser steps changed encoder and decoder together: use one optimiser per "
                        "phase, over model.decoder_parameters() (wake) and model.encoder_parameters() (sleep)")
    if dec != n:
        problems.append(f"expected one wake (decoder) step per batch ({n} batches), saw {dec}")
    if enc != n:
        problems.append(f"expected one sleep (encoder) step per batch ({n} batches), saw {enc}")
    if dec == n and a["dec_lr_ok"][0] != dec:
        problems.append("the wake steps should use the learning rate lr_wake")
    if enc == n and a["enc_lr_ok"][0] != enc:
        problems.append("the sleep steps should use the learning rate lr_sleep (one optimiser per phase)")
    if a["history_wake"][0] != 1 or a["history_sleep"][0] != 1:
        problems.append("history['wake'] and history['sleep'] should hold one mean loss per epoch")
    return CheckResult(not problems, "\n".join(problems))

"""Public checks for the ``vae`` assignment: properties that hold for any correct answer.

Also the parent-side helpers the hidden checks share: the recorded draws, the
probe model's q(z|x) on them, and the log densities (the formulas are in the
statement, so nothing here reveals the reference).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..worker.vae import BATCH, KS, LATENT, exact_log_px, kl_cases, make_images, make_model
from . import CheckContext, CheckResult, register, register_validator

N_ENC = sum(p.numel() for p in make_model(0).encoder_parameters())
N_DEC = sum(p.numel() for p in make_model(0).decoder_parameters())


# ------------------------------------------------------------------ schemas

def _vector(a: np.ndarray | None, sizes: tuple[int, ...] | None = None, cap: int = 200_000) -> bool:
    return a is not None and a.ndim == 1 and a.size <= cap and (sizes is None or a.size in sizes)


def _calls_ok(arrays: dict, prefix: str) -> bool:
    return all(a.ndim <= 4 and a.size <= 64 * 5 * 784 for k, a in arrays.items() if k.startswith(prefix))


@register_validator("vae_kl")
def validate_kl(arrays: dict, args: dict) -> str | None:
    for case, (mu, _) in kl_cases(args["seed"]).items():
        if not (_vector(arrays.get(f"{case}_value"), cap=10_000) and _vector(arrays.get(f"{case}_shape"), cap=8)
                and _vector(arrays.get(f"{case}_grad_mu"), (0, mu.numel()))
                and _vector(arrays.get(f"{case}_grad_logvar"), (0, mu.numel()))):
            return f"the {case} case is missing or malformed"
        if int(np.prod(arrays[f"{case}_shape"])) != arrays[f"{case}_value"].size:
            return f"{case}_shape does not describe the value"
    return None


@register_validator("vae_wake")
@register_validator("vae_sleep")
def validate_phase(arrays: dict, args: dict) -> str | None:
    if not (_vector(arrays.get("value"), cap=100_000) and _vector(arrays.get("value_shape"), cap=8)):
        return "the loss value is missing or malformed"
    if int(np.prod(arrays["value_shape"])) != arrays["value"].size:
        return "value_shape does not describe the value"
    for name, n in (("enc", N_ENC), ("dec", N_DEC)):
        if not _vector(arrays.get(f"{name}_grad"), (0, n)) or arrays.get(f"{name}_grad_ok") is None \
                or arrays[f"{name}_grad_ok"].shape != (1,) or arrays[f"{name}_grad_ok"][0] not in (0, 1):
            return f"the {name}oder gradient is missing or malformed"
    if not (_calls_ok(arrays, "encode_in") and _calls_ok(arrays, "decode_in")):
        return "recorded inputs are too large"
    return None


@register_validator("vae_iwae")
def validate_iwae(arrays: dict, args: dict) -> str | None:
    for k in KS:
        if not _vector(arrays.get(f"k{k}_value"), cap=10_000):
            return f"the L_{k} values are missing or malformed"
        if not (_calls_ok(arrays, f"k{k}_decode_in") and _calls_ok(arrays, f"k{k}_encode_in")):
            return "recorded inputs are too large"
    if not _vector(arrays.get("exact_value"), cap=10_000):
        return "the exact-model value is missing or malformed"
    return None


@register_validator("vae_train")
def validate_train(arrays: dict, args: dict) -> str | None:
    for key in ("dec_steps", "enc_steps", "both_steps", "dec_lr_ok", "enc_lr_ok", "history_wake", "history_sleep"):
        a = arrays.get(key)
        if a is None or a.shape != (1,) or not np.isfinite(a[0]) or a[0] < 0 or a[0] != round(a[0]):
            return f"{key} is missing or not a count"
    return None


# ------------------------------------------------------------------ shared helpers

def calls(arrays: dict, prefix: str) -> list[np.ndarray]:
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


def _is_standard_normal(eps: np.ndarray) -> str | None:
    if eps.size == 0 or not np.all(np.isfinite(eps)):
        return "no finite draw"
    if np.max(np.abs(eps)) < 1e-6:
        return "z is the mean itself: draw z = mu + sigma * eps with eps ~ N(0, I)"
    m, s = float(eps.mean()), float(eps.std())
    tol = 4 / math.sqrt(eps.size)
    if abs(m) > 4 * tol + 0.05 or not 1 - 8 * tol - 0.1 < s < 1 + 8 * tol + 0.1:
        return f"the noise does not look standard normal (mean {m:.2f}, std {s:.2f})"
    return None


def iwae_samples(ctx: CheckContext, k: int) -> tuple[torch.Tensor | None, str | None]:
    """The student's k samples per example as (k, B, J), or None and why not."""
    rows = [a.reshape(-1, LATENT) for a in calls(ctx.outcome.arrays, f"k{k}_decode_in") if a.shape[-1] == LATENT]
    if not rows:
        return None, "the decoder was never called: decode z ~ q(z|x) to get log p(x|z)"
    z = torch.from_numpy(np.concatenate(rows)).float()
    if z.shape[0] != k * BATCH:
        return None, (f"the decoder saw {z.shape[0]} latent codes for k={k} and a batch of {BATCH}; "
                      f"expected k * B = {k * BATCH}")
    x = make_images(ctx.probe_args["seed"])
    candidates = [z.reshape(k, BATCH, LATENT), z.reshape(BATCH, k, LATENT).transpose(0, 1)]
    scores = [float((standardised(ctx.probe_args["seed"], x, c) ** 2).mean()) for c in candidates]
    best = candidates[int(np.argmin([abs(math.log(max(s, 1e-12))) for s in scores]))]
    return best, None


# ------------------------------------------------------------------ checks

@register("vae.kl_props")
def kl_props(ctx: CheckContext) -> CheckResult:
    """One KL per example, finite, non-negative, zero at the prior, with gradients."""
    a, problems = ctx.outcome.arrays, []
    for case, (mu, _) in kl_cases(ctx.probe_args["seed"]).items():
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


@register("vae.wake_props")
def wake_props(ctx: CheckContext) -> CheckResult:
    """Scalar; trains the decoder only; z is a draw from q(z|x)."""
    a = ctx.outcome.arrays
    problems = _phase_problems(a, "decoder", "encoder", "detach z (the wake phase trains the decoder only)")
    zs = [z for z in calls(a, "decode_in") if z.shape == (BATCH, LATENT)]
    if not zs:
        problems.append(f"the decoder never received z of shape ({BATCH}, {LATENT}) for a batch of {BATCH}")
    else:
        x = make_images(ctx.probe_args["seed"])
        why = _is_standard_normal(standardised(ctx.probe_args["seed"], x, torch.from_numpy(zs[0]).float()).numpy())
        if why:
            problems.append(f"z should be drawn from q(z|x): {why}")
    return CheckResult(not problems, "\n".join(problems))


@register("vae.sleep_props")
def sleep_props(ctx: CheckContext) -> CheckResult:
    """Scalar; trains the encoder only; z ~ N(0, I) and binary dreams x ~ Bernoulli(sigmoid(decode(z)))."""
    a, n = ctx.outcome.arrays, int(ctx.probe_args.get("num_samples", 64))
    problems = _phase_problems(a, "encoder", "decoder",
                               "sample x without gradient (torch.bernoulli, or under torch.no_grad())")
    zs = [z for z in calls(a, "decode_in") if z.shape == (n, LATENT)]
    xs = [x for x in calls(a, "encode_in") if x.shape == (n, 784)]
    if not zs:
        problems.append(f"the decoder never received z of shape ({n}, {LATENT}) for num_samples={n}")
    elif (why := _is_standard_normal(zs[0])) is not None:
        problems.append(f"z should be drawn from the prior N(0, I): {why}")
    if not xs:
        problems.append(f"the encoder never received dreamed images of shape ({n}, 784)")
    elif zs:
        x = xs[0]
        if not np.all((x == 0) | (x == 1)):
            problems.append("the dreams must be binary samples x ~ Bernoulli(sigmoid(decode(z))) "
                            "(torch.bernoulli), not the probabilities")
        else:
            with torch.no_grad():
                p = torch.sigmoid(make_model(ctx.probe_args["seed"]).decode(torch.from_numpy(zs[0]).float()))
            if abs(float(x.mean()) - float(p.mean())) > 0.03:
                problems.append(f"the dreams are not Bernoulli(sigmoid(decode(z))) samples: mean pixel "
                                f"{x.mean():.3f}, expected about {float(p.mean()):.3f}")
    return CheckResult(not problems, "\n".join(problems))


@register("vae.iwae_props")
def iwae_props(ctx: CheckContext) -> CheckResult:
    """(B,) and finite; L_1 equals the ELBO on its own draw; L_k = log p(x) where that is exact; k independent draws."""
    a, seed, problems = ctx.outcome.arrays, ctx.probe_args["seed"], []
    for k in KS:
        v = a[f"k{k}_value"]
        if v.size != BATCH:
            return CheckResult(False, f"iwae_bound returned {v.size} values for a batch of {BATCH}; expected "
                               "shape (B,), one bound per example")
        if not np.all(np.isfinite(v)):
            return CheckResult(False, f"L_{k} is not finite: the log-weights are about -500, so exp() underflows; "
                               "compute torch.logsumexp(log_w, dim=0) - math.log(k)")
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
        if not np.allclose(a["k1_value"], log_w, rtol=1e-4, atol=1e-3):
            problems.append("L_1 should equal the single-sample ELBO log p(x, z) - log q(z|x) on its draw "
                            f"(first example: got {a['k1_value'][0]:.3f}, expected {log_w[0]:.3f})")
    exact = exact_log_px(seed)
    if not np.allclose(a["exact_value"], exact, rtol=1e-5, atol=1e-3):
        diff = float(np.mean(a["exact_value"] - exact))
        hint = " (that is log 5: subtract log k)" if abs(diff - math.log(5)) < 1e-2 else ""
        problems.append(f"on a model where log p(x) is exact, L_5 should equal log p(x); it is off by {diff:.4g}{hint}")
    z5, why = iwae_samples(ctx, 5)
    if why:
        problems.append(why)
    elif float((z5 - z5[0:1]).abs().max()) < 1e-7:
        problems.append("the k samples per example are identical: draw fresh noise for each of the k samples")
    return CheckResult(not problems, "\n".join(problems))


@register("vae.train_structure")
def train_structure(ctx: CheckContext) -> CheckResult:
    """Per batch one decoder (wake) step and one encoder (sleep) step, separate optimisers; history per epoch."""
    a, n = ctx.outcome.arrays, int(ctx.probe_args.get("batches", 3))
    dec, enc, both = (int(a[k][0]) for k in ("dec_steps", "enc_steps", "both_steps"))
    problems = []
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

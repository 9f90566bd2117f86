"""Public checks of the gan assignment: properties that need no reference solution.

They also hold the analysis of the student's draws (the z that reached g, the
batches that reached d) that the hidden checks build on.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from grader.checks import CheckContext, CheckResult, check

from . import fixtures

DRAWS = ("g_in*", "d_in*")
LOSSES = {"d": ("d_loss", "discriminator"), "g": ("g_loss", "generator")}


def losses(ctx: CheckContext) -> list[str]:
    """The losses the student function returns: ``d`` and ``g``, or one of them (``returns`` arg)."""
    returns = ctx.args.get("returns", "both")
    return ["d", "g"] if returns == "both" else [returns]


def reads(*names: str) -> tuple[str, ...]:
    """The outputs of the loss probe about losses ``names`` (``d``, ``g``)."""
    return tuple(f"{n}_{suffix}" for n in names for suffix in ("loss", "loss_shape", "grad", "grad_ok", "extreme"))


UNSTABLE = ("{loss} is not finite when the discriminator's logits reach about +-200, as a confident "
            "discriminator's do in training (the numerical stability policy of the statement): compute log D and "
            "log(1 - D) from the logits with F.logsigmoid(h) and F.logsigmoid(-h), not torch.log(torch.sigmoid(h))")


@dataclass
class Draws:
    """What reached the probe networks during the student's call, call by call."""

    g_calls: list[tuple[np.ndarray, ...]]   # (z,) or (z, y)
    d_calls: list[tuple[np.ndarray, ...]]   # (x,) or (x, y)


def read_draws(arrays) -> Draws:
    """Regroup the worker's ``g_in{i}_{j}`` / ``d_in{i}_{j}`` arrays into calls."""
    def calls(prefix: str) -> list[tuple[np.ndarray, ...]]:
        out = []
        for i in range(8):
            args = tuple(arrays[f"{prefix}_in{i}_{j}"] for j in range(2) if f"{prefix}_in{i}_{j}" in arrays)
            if not args:
                break
            out.append(args)
        return out
    return Draws(calls("g"), calls("d"))


def z_problem(z: np.ndarray) -> str | None:
    """None when z looks like a (B, dim_z) draw from N(0, I), else what is wrong with it."""
    if z.shape != (fixtures.BATCH, fixtures.DIM_Z):
        return (f"the generator received z of shape {z.shape}; expected ({fixtures.BATCH}, {fixtures.DIM_Z}), "
                "i.e. torch.randn(batch_size, g.dim_z)")
    if not np.all(np.isfinite(z)):
        return "the generator received z with NaN or infinite values"
    mean, std, tail = float(z.mean()), float(z.std()), float(np.mean(np.abs(z) > 1.0))
    if abs(mean) > 0.15 or not 0.85 < std < 1.15 or not 0.2 < tail < 0.45:
        kind = " (it looks uniform: use torch.randn, not torch.rand)" if z.min() >= 0 or std < 0.6 else ""
        return f"z does not look like a draw from N(0, I): mean {mean:.3f}, std {std:.3f}{kind}"
    return None


def fakes(ctx: CheckContext) -> list[np.ndarray]:
    """G(z) on the probe generator for each recorded generator call (computed here, in the parent)."""
    if "fakes" not in ctx.cache:
        g, _ = fixtures.make_nets(ctx.args["seed"], bool(ctx.args.get("conditional")))
        out = []
        with torch.no_grad():
            for call in read_draws(ctx.outputs).g_calls:
                args = [torch.from_numpy(a).float() for a in call]
                try:
                    out.append(g(*args).double().numpy() if args[0].shape[-1] == fixtures.DIM_Z else None)
                except (RuntimeError, IndexError, ValueError):
                    out.append(None)
        ctx.cache["fakes"] = out
    return ctx.cache["fakes"]


def _chunks(d_calls: list[tuple[np.ndarray, ...]], shape: tuple[int, ...]) -> list[np.ndarray]:
    """Image batches that reached d, split into batches of B (a student may call d on a concatenation)."""
    out = []
    for call in d_calls:
        x = call[0]
        if x.ndim == len(shape) and x.shape[1:] == shape[1:] and x.shape[0] % shape[0] == 0:
            out += [x[i:i + shape[0]] for i in range(0, x.shape[0], shape[0])]
    return out


@dataclass
class Interpolation:
    """Where the gradient penalty was evaluated: x_real + alpha * (G(z_k) - x_real)."""

    alpha: np.ndarray | None   # (B,) one weight per example, None when not found
    z_index: int = -1          # which generator call produced the fakes
    problem: str | None = None


def find_interpolation(ctx: CheckContext) -> Interpolation:
    """Recover the per-example interpolation weights from the batches that reached d."""
    if "interp" in ctx.cache:
        return ctx.cache["interp"]
    x_real = fixtures.make_batch(ctx.args["seed"])[0].double().numpy()
    flat_real = x_real.reshape(fixtures.BATCH, -1)
    candidates = [(k, f.reshape(fixtures.BATCH, -1)) for k, f in enumerate(fakes(ctx))
                  if f is not None and f.shape == x_real.shape]
    result = Interpolation(None, problem=(
        "no interpolated images reached d (was the penalty taken at the real or fake images "
        "themselves?): it must be evaluated at x_hat = alpha * x_fake + (1 - alpha) * x_real, "
        "with alpha ~ U[0, 1] per example"))
    per_pixel = False
    for x in _chunks(read_draws(ctx.outputs).d_calls, x_real.shape):
        flat = x.reshape(fixtures.BATCH, -1)
        if np.allclose(flat, flat_real, atol=1e-6) or any(np.allclose(flat, f, atol=1e-5) for _, f in candidates):
            continue
        for k, f in candidates:
            delta = f - flat_real
            alpha = np.sum((flat - flat_real) * delta, axis=1) / np.maximum(np.sum(delta * delta, axis=1), 1e-12)
            resid = np.linalg.norm(flat - flat_real - alpha[:, None] * delta, axis=1)
            if np.all(resid <= 1e-4 * np.linalg.norm(delta, axis=1) + 1e-6):
                result = Interpolation(alpha, k)
                break
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = (flat - flat_real) / np.where(np.abs(delta) > 1e-6, delta, np.nan)
            if np.nanmin(ratio) >= -1e-4 and np.nanmax(ratio) <= 1 + 1e-4:
                per_pixel = True
        if result.alpha is not None:
            break
    if result.alpha is None and per_pixel:
        result.problem = ("the interpolation weights differ from pixel to pixel: draw one alpha per "
                          "example, e.g. torch.rand(batch_size, 1, 1, 1), so it broadcasts over pixels")
    if result.alpha is not None:
        a = result.alpha
        if a.min() < -1e-5 or a.max() > 1 + 1e-5:
            result.problem = (f"interpolation weights outside [0, 1] (min {a.min():.3f}, max {a.max():.3f}): "
                              "draw alpha ~ U[0, 1] with torch.rand")
        elif np.all((np.abs(a) < 1e-6) | (np.abs(a - 1) < 1e-6)):
            result.problem = ("the penalty was taken at the real or fake images themselves; "
                              "it must use random points between them")
    ctx.cache["interp"] = result
    return result


def _scalar_problem(arrays, name: str) -> str | None:
    shape = tuple(int(s) for s in arrays[f"{name}_shape"])
    if arrays[name].size != 1:
        return (f"{name} has shape {shape}; expected a scalar (did you forget .mean() over the batch?)")
    if not np.isfinite(arrays[name]).all():
        return f"{name} is {arrays[name].item()}, not a finite number"
    return None


@check("scalars", probe="loss", reads=reads("d", "g"))
def scalars(ctx: CheckContext) -> CheckResult:
    """Every loss returned is a finite scalar tensor, also at extreme logits."""
    problems = [p for p in (_scalar_problem(ctx.outputs, LOSSES[n][0]) for n in losses(ctx)) if p]
    problems += [UNSTABLE.format(loss=LOSSES[n][0]) for n in losses(ctx) if ctx.outputs[f"{n}_extreme"][0] != 1]
    return CheckResult(not problems, "\n".join(problems))


@check("gradients", probe="loss", reads=reads("d", "g"))
def gradients(ctx: CheckContext) -> CheckResult:
    """d_loss reaches the discriminator's parameters and g_loss the generator's, with finite gradients."""
    a, problems = ctx.outputs, []
    for n in losses(ctx):
        loss, net = LOSSES[n]
        grad, ok = a[f"{n}_grad"], a[f"{n}_grad_ok"].item() == 1
        if a[loss].size != 1:
            problems.append(f"{loss} is not a scalar, so it has no gradient")
        elif not ok or not np.any(grad):
            hint = (" (was x_fake detached, or computed under torch.no_grad()?)" if loss == "g_loss" else "")
            problems.append(f"{loss} sends no gradient to the {net}'s parameters{hint}")
        elif not np.all(np.isfinite(grad)):
            problems.append(f"the gradient of {loss} w.r.t. the {net}'s parameters has NaN or inf")
    return CheckResult(not problems, "\n".join(problems))


@check("draws", probe="loss", reads=DRAWS)
def draws(ctx: CheckContext) -> CheckResult:
    """z is drawn from N(0, I) with shape (B, dim_z); WGAN-GP interpolates one alpha per example."""
    d = read_draws(ctx.outputs)
    if not d.g_calls:
        return CheckResult(False, "the generator was never called: generate x_fake = g(z)")
    problems = [p for p in (z_problem(call[0]) for call in d.g_calls) if p]
    if not problems and ctx.args.get("penalty"):
        interp = find_interpolation(ctx)
        if interp.problem:
            problems.append(interp.problem)
    return CheckResult(not problems, "\n".join(dict.fromkeys(problems)))

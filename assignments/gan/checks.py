"""Public checks of the gan assignment: properties that need no reference solution.

They also hold the analysis of the student's draws (the z that reached g, the
batches that reached d) that the hidden checks build on.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from grader.engine.checks import CheckContext, CheckResult, check

from . import fixtures

DRAWS = ("g_in*", "d_in*")
LOGITS = ("d_out*", "d_dh*", "g_dh*")
TINY = 1e-9
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
            "log(1 - D) from the logits with F.logsigmoid(h) and F.logsigmoid(-h) (or F.softplus, or "
            "F.binary_cross_entropy_with_logits), not torch.log(torch.sigmoid(h)) or torch.log1p(-torch.sigmoid(h))")


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
    if np.max(np.abs(z)) < 1e-12:
        return "z is all zeros, the mean of N(0, I), not a draw: z = torch.randn(batch_size, g.dim_z)"
    if np.max(np.abs(z - z[:1])) < 1e-7:
        return ("the same z for every example of the batch (one draw broadcast or repeated): draw one per "
                "example, z = torch.randn(batch_size, g.dim_z)")
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
        if _same(flat, flat_real, 1e-6) or any(_same(flat, f, 1e-5) for _, f in candidates):
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
        elif np.ptp(a) < 1e-6 and abs(float(a.mean()) - 0.5) < 1e-6:
            result.problem = ("alpha is fixed at 0.5, the mean of U[0, 1], not drawn: draw one weight per "
                              "example, alpha = torch.rand(batch_size, 1, 1, 1)")
        elif np.ptp(a) < 1e-6:
            result.problem = ("one alpha for the whole batch: draw one weight per example, "
                              "alpha = torch.rand(batch_size, 1, 1, 1)")
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


# ------------------------------------------------------------------ the losses as functions of the logits


@dataclass
class Terms:
    """A loss's dependence on the logits, term by term: (logits, d loss / d logits), each (B,)."""

    real: tuple[np.ndarray, np.ndarray] | None = None
    fake: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)   # by generator call

    def draw(self) -> int | None:
        """The generator call whose fakes this loss depends on most (the draw it used)."""
        weights = {k: float(np.linalg.norm(g)) for k, (_, g) in self.fake.items()}
        best = max(weights, key=weights.get, default=None)
        return best if best is not None and weights[best] > TINY else None


def _same(a: np.ndarray, b: np.ndarray, atol: float) -> bool:
    """``np.allclose(a, b, atol=atol)`` for two finite arrays of one shape, without its overhead
    (images are told apart this way dozens of times a submission)."""
    return a.shape == b.shape and bool((np.abs(a - b) <= atol + 1e-5 * np.abs(b)).all())


def split_terms(calls: list[tuple[np.ndarray, np.ndarray, np.ndarray]], x_real: np.ndarray,
                fakes: list[np.ndarray | None]) -> Terms:
    """Terms of one loss from the discriminator's calls: (images (N, ...), logits (N,), d loss/d logits (N,)).

    A call may score several batches at once (``d(torch.cat([x_real, x_fake]))``):
    its rows are split into batches of B and each is told apart by its images.
    Calls the loss does not depend on (an empty gradient) and unknown images
    (interpolates) are left out.
    """
    b = x_real.shape[0]
    out = Terms()
    for x, h, dh in calls:
        if dh.size == 0 or x.shape[0] % b or h.size != x.shape[0] or dh.size != h.size or x.shape[1:] != x_real.shape[1:]:
            continue
        for start in range(0, x.shape[0], b):
            rows, logits, grad = x[start:start + b], h[start:start + b], dh[start:start + b]
            if _same(rows, x_real, 1e-6):
                prev = out.real[1] if out.real is not None else 0.0
                out.real = (logits, grad + prev)
                continue
            for k, fake in enumerate(fakes):
                if fake is not None and fake.shape == rows.shape and _same(rows, fake, 1e-5):
                    prev = out.fake[k][1] if k in out.fake else 0.0
                    out.fake[k] = (logits, grad + prev)
                    break
    return out


def label_problem(ctx: CheckContext) -> str | None:
    """Conditional GAN: every call of g and d must use the labels y_real of the batch."""
    y_real = fixtures.make_batch(ctx.args["seed"])[1].double().numpy()
    d = read_draws(ctx.outputs)
    for call in d.g_calls:
        if len(call) < 2 or call[1].shape != y_real.shape or not np.array_equal(call[1], y_real):
            return "the generator was not given the batch's labels: generate x_fake = g(z, y_real)"
    for call in d.d_calls:
        if len(call) < 2 or call[1].shape != y_real.shape or not np.array_equal(call[1], y_real):
            return ("the discriminator scored images with labels other than y_real: use d(x_real, y_real) "
                    "and d(x_fake, y_real), the labels the fakes were generated for")
    return None


def terms_of(ctx: CheckContext, n: str) -> Terms:
    """Loss ``n`` ("d" or "g") split into its terms, from the logits the probe recorded."""
    a = ctx.outputs
    x_real = fixtures.make_batch(ctx.args["seed"])[0].double().numpy()
    calls = [(a[f"d_in{i}_0"], a.get(f"d_out{i}", np.zeros(0)), a.get(f"{n}_dh{i}", np.zeros(0)))
             for i in range(len(read_draws(a).d_calls))]
    return split_terms(calls, x_real, fakes(ctx))


@check("directions", probe="loss", reads=DRAWS + LOGITS)
def directions(ctx: CheckContext) -> CheckResult:
    """Each loss moves the right way: the generator's falls as D(G(z)) rises; the discriminator's falls as
    D(x_real) rises and as D(G(z)) falls. True of every GAN loss here, so it reveals no reference value."""
    problems = []
    for n in losses(ctx):
        t = terms_of(ctx, n)
        fake = next((g for _, g in (t.fake[k] for k in sorted(t.fake)) if np.linalg.norm(g) > TINY), None)
        if n == "g":
            if fake is not None and np.any(fake > TINY):
                problems.append("g_loss rises as D(G(z)) rises: the generator must make its fakes look real "
                                "(is the sign of g_loss flipped?)")
        else:
            if t.real is not None and np.any(t.real[1] > TINY):
                problems.append("d_loss rises as D(x_real) rises: the discriminator must score real images "
                                "high (is a sign flipped, or are the labels swapped?)")
            if fake is not None and np.any(fake < -TINY):
                problems.append("d_loss falls as D(G(z)) rises: the discriminator must score fakes low "
                                "(is a sign flipped, or are the labels swapped?)")
    return CheckResult(not problems, "\n".join(problems))


@check("batch_means", probe="loss", reads=DRAWS + LOGITS)
def batch_means(ctx: CheckContext) -> CheckResult:
    """Each loss is a batch mean: no single example's logit weighs more than 1/B (the size of a log D,
    log(1 - D) or raw-logit term's slope is at most 1), so halving the batch would leave it unchanged
    rather than halve it."""
    problems = []
    for n in losses(ctx):
        t = terms_of(ctx, n)
        grads = ([t.real[1]] if t.real is not None else []) + [g for _, g in t.fake.values()]
        for g in grads:
            if g.size and np.max(np.abs(g)) * g.size > 1 + 1e-3:
                problems.append(f"{LOSSES[n][0]} weighs one example's logit by {np.max(np.abs(g)):.3g}, more than "
                                f"1/B = {1 / g.size:.3g}: it grows with the batch. Average over the batch "
                                "(.mean()), do not sum")
                break
    return CheckResult(not problems, "\n".join(problems))


@check("labels", probe="loss", reads=DRAWS)
def labels(ctx: CheckContext) -> CheckResult:
    """Conditional GAN: the fakes are generated for, and every image is scored with, the batch's labels."""
    problem = label_problem(ctx)
    return CheckResult(problem is None, problem or "the generator and the discriminator got the batch's labels")


@check("penalty_gradient", probe="loss", reads=reads("d") + DRAWS)
def penalty_gradient(ctx: CheckContext) -> CheckResult:
    """WGAN-GP: the penalty sends gradient to the critic's parameters (the input gradient keeps its graph).

    The critic terms E[D(G(z))] - E[D(x)] are recomputed here on the recorded draws; if d_loss's gradient
    is theirs alone while its value holds more (a penalty), the penalty was computed without create_graph.
    """
    from grader.engine.compare import close, close_vector
    from grader.sandbox.probing import flat_grad

    a = ctx.outputs
    interp = find_interpolation(ctx)
    if interp.alpha is None or a["d_loss"].size != 1 or a["d_grad_ok"][0] != 1:
        return CheckResult(True, "(judged by the other checks)")
    g, d = fixtures.make_nets(ctx.args["seed"], bool(ctx.args.get("conditional")))
    x_real = fixtures.make_batch(ctx.args["seed"])[0]
    z = torch.from_numpy(read_draws(a).g_calls[interp.z_index][0]).float()
    critic = d(g(z).detach()).mean() - d(x_real).mean()
    if close(float(a["d_loss"][0]), critic.item()):
        return CheckResult(True, "(no penalty in the value: judged by the value test)")
    if close_vector(a["d_grad"], flat_grad(critic, list(d.parameters()))[0]):
        return CheckResult(False, "d_loss holds a penalty, but the penalty sends no gradient to the critic's "
                                  "parameters", hint="compute the input gradient with "
                                                     "torch.autograd.grad(..., create_graph=True)")
    return CheckResult(True, "the penalty sends gradient to the critic")

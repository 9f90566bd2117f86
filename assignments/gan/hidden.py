"""Hidden checks of the gan assignment: the reference on the student's own draws.

Each loss is compared with the reference evaluated on the draw that loss used
(the fakes it depends on, told by its gradient with respect to the logits). A
loss passes when its value and its gradient w.r.t. the network it trains
(d_loss: the discriminator, g_loss: the generator) both match at moderate
logits; a separate stability test (d_stable, g_stable) asks a loss that
passes to stay finite where the logits reach about +-200. When they do not, diagnose.py says which term is
wrong and how; a catalogue of familiar whole-loss mistakes, evaluated on the
same draws, names them when the value is exactly one.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from grader.engine import reference
from grader.engine.checks import CheckContext, CheckResult, check
from grader.engine.compare import close, close_vector, compare, fmt, relative_error
from grader.sandbox.probing import InputRecorder, flat_grad

from . import fixtures
from .checks import (
    DRAWS,
    LOGITS,
    LOSSES,
    UNSTABLE,
    Terms,
    fakes,
    find_interpolation,
    label_problem,
    losses,
    read_draws,
    reads,
    split_terms,
    z_problem,
)
from .diagnose import compare_terms, explain_penalty

LAMBDA = 10.0


@dataclass
class Evaluation:
    """Reference values on one draw, and the raw quantities mistakes are built from."""

    d_loss: float
    g_loss: float
    d_grad: np.ndarray
    g_grad: np.ndarray
    terms: dict[str, float]      # d_real/d_fake means and penalty variants, for the mistake catalogue
    d_grad_critic_only: np.ndarray | None = None
    by_logit: dict[str, Terms] | None = None   # each loss, term by term (diagnose.py)


def _evaluate(ctx: CheckContext, z: np.ndarray, alpha: np.ndarray | None) -> Evaluation:
    """Run the reference loss on the probe nets with the student's z (and alpha) replayed."""
    args = ctx.args
    conditional = bool(args.get("conditional"))
    fn = getattr(reference.load_module(ctx.assignment), args["function"])
    g, d = fixtures.make_nets(args["seed"], conditional)
    x_real, y_real = fixtures.make_batch(args["seed"])
    cpu = torch.device("cpu")
    z_t = torch.from_numpy(z).float()
    a_t = [torch.from_numpy(alpha).float()] if alpha is not None else [torch.full((fixtures.BATCH,), 0.5)]
    recorder = InputRecorder(d, keep_outputs=True)
    with reference.replay(randn=[z_t], rand=a_t):
        extra = (y_real,) if conditional else ()
        result = fn(g, d, x_real, *extra, device=cpu)
    recorder.remove()
    returns = args.get("returns", "both")
    d_loss, g_loss = result if returns == "both" else (result, None) if returns == "d" else (None, result)
    with torch.no_grad():
        fake = (g(z_t, y_real) if conditional else g(z_t)).double().numpy()
    by_logit = {}
    for name, loss in (("d_loss", d_loss), ("g_loss", g_loss)):
        if loss is not None:
            calls = [(x[0].double().numpy(), h.detach().double().reshape(-1).numpy(),
                      np.zeros(0) if dh is None else dh.double().reshape(-1).numpy())
                     for x, h, dh in zip(recorder.calls, recorder.outputs, recorder.output_grads(loss))]
            by_logit[name] = split_terms(calls, x_real.double().numpy(), [fake])
    d_grad = flat_grad(d_loss, list(d.parameters()))[0] if d_loss is not None else np.zeros(0)
    g_grad = flat_grad(g_loss, list(g.parameters()))[0] if g_loss is not None else np.zeros(0)
    terms = _terms(g, d, x_real, y_real if conditional else None, z_t, a_t[0])
    ev = Evaluation(d_loss.item() if d_loss is not None else float("nan"),
                    g_loss.item() if g_loss is not None else float("nan"), d_grad, g_grad, terms,
                    by_logit=by_logit)
    if args.get("penalty"):
        critic = d(g(z_t).detach()).mean() - d(x_real).mean() + LAMBDA * terms["penalty"]
        ev.d_grad_critic_only, _ = flat_grad(critic, list(d.parameters()))
    return ev


def _terms(g, d, x_real, y_real, z, alpha) -> dict[str, float]:
    """Batch statistics of the logits and penalty variants, as floats."""
    with torch.no_grad():
        x_fake = g(z, y_real) if y_real is not None else g(z)
        h_real = (d(x_real, y_real) if y_real is not None else d(x_real)).double()
        h_fake = (d(x_fake, y_real) if y_real is not None else d(x_fake)).double()
    ls = F.logsigmoid
    t = {
        "ls_real_mean": ls(h_real).mean().item(), "ls_real_sum": ls(h_real).sum().item(),
        "ls_negreal_mean": ls(-h_real).mean().item(),
        "ls_fake_mean": ls(h_fake).mean().item(), "ls_fake_sum": ls(h_fake).sum().item(),
        "ls_negfake_mean": ls(-h_fake).mean().item(), "ls_negfake_sum": ls(-h_fake).sum().item(),
        "h_real_mean": h_real.mean().item(), "h_fake_mean": h_fake.mean().item(),
        "h_real_sum": h_real.sum().item(), "h_fake_sum": h_fake.sum().item(),
        "sig_real_mean": torch.sigmoid(h_real).mean().item(),
        "sig_fake_mean": torch.sigmoid(h_fake).mean().item(),
    }
    if y_real is None:
        x_hat = (x_real + alpha.reshape(-1, 1, 1, 1) * (x_fake - x_real)).requires_grad_(True)
        (grad,) = torch.autograd.grad(d(x_hat).sum(), x_hat)
        norms = grad.reshape(grad.shape[0], -1).norm(dim=1).double()
        t["penalty"] = ((norms - 1) ** 2).mean().item()
        t["penalty_squared_norm"] = ((norms ** 2 - 1) ** 2).mean().item()
        t["penalty_batch_norm"] = ((grad.double().norm() - 1) ** 2).item()
        t["penalty_per_pixel"] = ((grad.double().norm(2, dim=1) - 1) ** 2).mean().item()
        t["penalty_sum"] = ((norms - 1) ** 2).sum().item()
        t["penalty_one_sided"] = (torch.clamp(norms - 1, min=0) ** 2).mean().item()
        (grad_sig,) = torch.autograd.grad(torch.sigmoid(d(x_hat)).sum(), x_hat)
        norms_sig = grad_sig.reshape(grad_sig.shape[0], -1).norm(dim=1).double()
        t["penalty_sigmoid"] = ((norms_sig - 1) ** 2).mean().item()
    return t


def _catalogue(kind: str, loss: str, ev: Evaluation) -> list[tuple[str, float]]:
    """Values that typical mistakes would produce on these draws, with the message for each."""
    t = ev.terms
    bce_d = -t["ls_real_mean"] - t["ls_negfake_mean"]
    out: list[tuple[str, float]] = []
    if loss == "d_loss" and kind != "wgan":
        out += [
            ("the sign is flipped: L_D = -E[log D(x)] - E[log(1 - D(G(z)))] is minimised", -bce_d),
            ("it is half the expected value: L_D is the sum of two batch means (real and fake), "
             "not one mean over the concatenated batch", bce_d / 2),
            ("it sums over the batch instead of averaging (use .mean())",
             -t["ls_real_sum"] - t["ls_negfake_sum"]),
            ("the real and fake labels are swapped", -t["ls_negreal_mean"] - t["ls_fake_mean"]),
            ("it only has the real-data term -E[log D(x)]", -t["ls_real_mean"]),
            ("it only has the fake-data term -E[log(1 - D(G(z)))]", -t["ls_negfake_mean"]),
            ("it is the Wasserstein critic loss, not the cross-entropy loss",
             t["h_fake_mean"] - t["h_real_mean"]),
        ]
    if loss == "g_loss" and kind == "nonsaturating":
        out += [
            ("your generator loss equals the minimax loss E[log(1 - D(G(z)))]; the non-saturating "
             "loss is -E[log D(G(z))]", t["ls_negfake_mean"]),
            ("the sign is flipped: the non-saturating loss is -E[log D(G(z))]", t["ls_fake_mean"]),
            ("it sums over the batch instead of averaging (use .mean())", -t["ls_fake_sum"]),
            ("it returns the discriminator's loss", bce_d),
            ("it is the negated discriminator loss; the generator loss has no real-data term", -bce_d),
        ]
    if loss == "g_loss" and kind == "minimax":
        out += [
            ("your generator loss equals the non-saturating loss -E[log D(G(z))]; the minimax loss "
             "is E[log(1 - D(G(z)))]", -t["ls_fake_mean"]),
            ("the sign is flipped: the minimax generator loss is E[log(1 - D(G(z)))]", -t["ls_negfake_mean"]),
            ("it sums over the batch instead of averaging (use .mean())", t["ls_negfake_sum"]),
            ("it is -L_D, which adds the real-data term E[log D(x)]; that term does not depend on G, "
             "so return E[log(1 - D(G(z)))] only", -bce_d),
            ("it returns the discriminator's loss", bce_d),
        ]
    if kind == "wgan":
        w = t["h_fake_mean"] - t["h_real_mean"]
        pen = t.get("penalty", 0.0)
        if loss == "d_loss":
            out += [
                ("it has no gradient penalty", w),
                ("the sign of the critic terms is flipped: L_D = E[D(G(z))] - E[D(x)] + penalty",
                 -w + LAMBDA * pen),
                ("the penalty uses the squared norm; it is (||grad||_2 - 1)^2", w + LAMBDA * t["penalty_squared_norm"]),
                ("the penalty uses one norm over the whole batch; take the norm per example "
                 "(grad.reshape(B, -1).norm(dim=1))", w + LAMBDA * t["penalty_batch_norm"]),
                ("the penalty is summed over the batch instead of averaged", w + LAMBDA * t["penalty_sum"]),
                ("the penalty is one-sided (max(0, ||grad|| - 1)^2); WGAN-GP uses (||grad|| - 1)^2",
                 w + LAMBDA * t["penalty_one_sided"]),
                ("a sigmoid is applied to the critic; WGAN-GP uses its raw output",
                 t["sig_fake_mean"] - t["sig_real_mean"] + LAMBDA * t["penalty_sigmoid"]),
                ("it is the cross-entropy GAN loss, not the Wasserstein loss", bce_d),
                ("it is the cross-entropy GAN loss plus a penalty, not the Wasserstein loss", bce_d + LAMBDA * pen),
                ("it sums the critic terms over the batch instead of averaging",
                 t["h_fake_sum"] - t["h_real_sum"] + LAMBDA * pen),
            ]
        else:
            out += [
                ("the sign is flipped: L_G = -E[D(G(z))]", t["h_fake_mean"]),
                ("a sigmoid is applied to the critic; WGAN-GP uses its raw output", -t["sig_fake_mean"]),
                ("it is the non-saturating loss -E[log D(G(z))], not the Wasserstein loss", -t["ls_fake_mean"]),
                ("it sums over the batch instead of averaging (use .mean())", -t["h_fake_sum"]),
            ]
    return out


def _kind(ctx: CheckContext) -> str:
    """The loss family: the part's ``loss`` arg, else told by the penalty and the function's name."""
    if ctx.args.get("loss"):
        return str(ctx.args["loss"])
    if ctx.args.get("penalty"):
        return "wgan"
    return "minimax" if "minimax" in ctx.args["function"] else "nonsaturating"


_close = close


def _penalty_weight_hint(value: float, ev: Evaluation) -> str | None:
    """If value = critic terms + lambda' * penalty for a positive lambda' != 10, say so."""
    pen = ev.terms.get("penalty")
    if not pen or pen < 1e-6:
        return None
    lam = (value - (ev.terms["h_fake_mean"] - ev.terms["h_real_mean"])) / pen
    plausible = lam > 0 and (abs(lam - round(lam)) < 1e-3 * lam or abs(10 * lam - round(10 * lam)) < 1e-3 * lam)
    if plausible and not _close(lam, LAMBDA):
        return f"the penalty weight looks like lambda = {lam:.3g}; it should be {LAMBDA:g}"
    return None


def _analyse(ctx: CheckContext) -> dict[str, CheckResult]:
    """Verdicts for each loss the function returns, computed once per part."""
    if "verdicts" in ctx.cache:
        return ctx.cache["verdicts"]
    a = ctx.outputs
    draws = read_draws(a)
    names = [LOSSES[n][0] for n in losses(ctx)]
    verdicts: dict[str, CheckResult] = {}
    zs = [call[0] for call in draws.g_calls]
    if not zs:
        common = "the generator was never called: generate x_fake = g(z)"
    else:
        common = next((p for p in (z_problem(z) for z in zs) if p), None)
    if common is not None:
        ctx.cache["verdicts"] = {k: CheckResult(False, common) for k in names}
        return ctx.cache["verdicts"]
    alpha, penalty_problem = None, None
    if ctx.args.get("penalty"):
        interp = find_interpolation(ctx)
        alpha, penalty_problem = interp.alpha, interp.problem
    label_hint = label_problem(ctx) if ctx.args.get("conditional") else None
    evals: dict[int, Evaluation] = {}

    def ev(k: int) -> Evaluation:
        if k not in evals:
            evals[k] = _evaluate(ctx, zs[k], alpha)
        return evals[k]

    x_real = fixtures.make_batch(ctx.args["seed"])[0].double().numpy()
    calls = [(a[f"d_in{i}_0"], a.get(f"d_out{i}", np.zeros(0)), None) for i in range(len(draws.d_calls))]
    kind = _kind(ctx)
    for n in losses(ctx):
        loss, net = LOSSES[n]
        if loss == "d_loss" and penalty_problem:
            verdicts[loss] = CheckResult(False, penalty_problem)
            continue
        got = a[loss]
        if got.size != 1:
            verdicts[loss] = CheckResult(False, f"{loss} has shape {tuple(int(s) for s in a[loss + '_shape'])}; "
                                                "expected a scalar")
            continue
        value = float(got.item())
        mine = split_terms([(x, h, a.get(f"{n}_dh{i}", np.zeros(0))) for i, (x, h, _) in enumerate(calls)],
                           x_real, fakes(ctx))
        k = mine.draw()   # the draw this loss used: its expected value is the reference's on that draw
        best = ev(k) if k is not None else min((ev(j) for j in range(len(zs))),
                                               key=lambda e: abs(getattr(e, loss) - value))
        expected = getattr(best, loss)
        grad, grad_ok = a[f"{n}_grad"], a[f"{n}_grad_ok"].item() == 1
        ref_grad = best.d_grad if loss == "d_loss" else best.g_grad
        if _close(value, expected) and grad_ok and close_vector(grad, ref_grad):
            verdicts[loss] = CheckResult(True, f"{loss} = {fmt(value)} matches the reference, and so does its gradient")
            continue
        if _close(value, expected):
            if not grad_ok:
                hint = (" (was x_fake detached, or computed under torch.no_grad()?)" if loss == "g_loss"
                        else " (was it computed from detached tensors?)")
                msg = f"{loss} has the right value but sends no gradient to the {net}'s parameters{hint}"
            elif loss == "d_loss" and best.d_grad_critic_only is not None and close_vector(grad, best.d_grad_critic_only):
                msg = ("d_loss has the right value, but its penalty sends no gradient to the critic's parameters: "
                       "compute the input gradient with torch.autograd.grad(..., create_graph=True)")
            else:
                msg = (f"{loss} has the right value but its gradient w.r.t. the {net}'s parameters differs "
                       f"from the reference (relative error {relative_error(grad, ref_grad):.3g})")
            verdicts[loss] = CheckResult(False, msg)
            continue
        msg = compare(loss, got, np.asarray([expected])) or f"{loss} differs from the reference"
        verdicts[loss] = CheckResult(False, msg, hint=_hint(kind, loss, value, best, mine, k, label_hint) or "")
    ctx.cache["verdicts"] = verdicts
    return verdicts


def _hint(kind: str, loss: str, value: float, best: Evaluation, mine: Terms, k: int | None,
          label_hint: str | None) -> str | None:
    """The likely mistake, worked out term by term from the logits (diagnose.py); headed by the name of
    a familiar whole-loss mistake when the value is exactly one (evaluated on the same draws)."""
    if label_hint:
        return label_hint
    term = compare_terms(loss, mine, best.by_logit[loss], k) if best.by_logit and loss in best.by_logit else None
    if term is None and kind == "wgan" and loss == "d_loss" and "penalty" in best.terms and k is not None:
        penalty = value - (best.d_loss - LAMBDA * best.terms["penalty"])   # the critic terms agree
        term = explain_penalty(penalty, best.terms, LAMBDA)
    named = next((m for m, v in _catalogue(kind, loss, best) if _close(value, v)), None)
    if named is None and term is None and kind == "wgan" and loss == "d_loss":
        named = _penalty_weight_hint(value, best)
    if named and term and term not in named:
        return f"{named} ({term})"
    return named or term


@check("d_loss", probe="loss", reads=reads("d", "g") + DRAWS + LOGITS)
def d_loss(ctx: CheckContext) -> CheckResult:
    """d_loss and its gradient w.r.t. the discriminator equal the reference on the student's draws."""
    return _analyse(ctx)["d_loss"]


@check("g_loss", probe="loss", reads=reads("d", "g") + DRAWS + LOGITS)
def g_loss(ctx: CheckContext) -> CheckResult:
    """g_loss and its gradient w.r.t. the generator equal the reference on the student's draws."""
    return _analyse(ctx)["g_loss"]


def _stability(ctx: CheckContext, n: str) -> CheckResult:
    """A loss that is right at moderate logits is also finite at extreme ones (the stability policy)."""
    loss = LOSSES[n][0]
    if not _analyse(ctx)[loss].passed:
        return CheckResult(False, f"not judged until {loss} is right at moderate logits (see its value test): "
                                  "the stability points go with a correct loss")
    if ctx.outputs[f"{n}_extreme"][0] != 1:
        return CheckResult(False, f"{loss} is right at moderate logits, but " + UNSTABLE.format(loss=loss))
    return CheckResult(True, f"{loss} stays finite where the discriminator's logits reach about +-200")


@check("d_stable", probe="loss", reads=reads("d", "g") + DRAWS + LOGITS)
def d_stable(ctx: CheckContext) -> CheckResult:
    """d_loss, right at moderate logits, is also finite where the logits reach about +-200."""
    return _stability(ctx, "d")


@check("g_stable", probe="loss", reads=reads("d", "g") + DRAWS + LOGITS)
def g_stable(ctx: CheckContext) -> CheckResult:
    """g_loss, right at moderate logits, is also finite where the logits reach about +-200."""
    return _stability(ctx, "g")

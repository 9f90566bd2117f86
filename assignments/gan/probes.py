"""Probes of the gan assignment: call a student loss on the probe nets and record everything.

The loss functions of the course take ``(g, d, x_real[, y_real], *, device)``
and return ``(d_loss, g_loss)``; in the current course version each returns one
of them (``returns: d`` or ``returns: g`` in the part's args). The probe
returns, for each loss it got (all float64):

    d_loss, g_loss            the values, flattened; ``*_shape`` their shapes
    d_grad, g_grad            d d_loss/d phi and d g_loss/d theta, flattened over parameters
    d_grad_ok, g_grad_ok      1 when the loss is connected to those parameters, else 0
    g_in{i}_{j}, d_in{i}_{j}  input j of the i-th call of g or d (z or x, then labels y)
    d_out{i}                  the logits of the i-th call of d
    d_dh{i}, g_dh{i}          d d_loss / d d_out{i} and d g_loss / d d_out{i}: how each loss depends on each
                              logit, which tells its terms apart (empty when it does not depend on that call)
    d_extreme, g_extreme      1 when the loss is finite on a discriminator whose logits reach about +-200
                              (as a confident discriminator's do in training), else 0
"""
import functools

import numpy as np
import torch

from grader.sandbox.probing import InputRecorder, Out, flat_grad, probe

from . import fixtures

MAX_CALLS = 8


def _n_params(args: dict, net: str) -> tuple[int, int]:
    return 0, _count_params(bool(args.get("conditional")), net)


@functools.cache
def _count_params(conditional: bool, net: str) -> int:
    """Parameters of the probe generator or discriminator (the seed changes values, not sizes)."""
    g, d = fixtures.make_nets(0, conditional)
    return sum(p.numel() for p in (d if net == "d" else g).parameters())


def _returns(args: dict) -> str:
    """Which losses the student function returns: ``both`` (a pair), ``d`` or ``g``."""
    return str(args.get("returns", "both"))


def _loss_outputs(name: str) -> dict[str, Out]:
    absent = (lambda args: _returns(args) not in ("both", name))   # noqa: E731 - a predicate on the args
    return {
        f"{name}_loss": Out(ndim=1, max_size=100_000, optional=absent),
        f"{name}_loss_shape": Out(kind="shape", of=f"{name}_loss", optional=absent),
        f"{name}_grad": Out(size=lambda args: _n_params(args, name), optional=absent),
        f"{name}_grad_ok": Out(kind="flag", size=1, optional=absent),
        f"{name}_extreme": Out(kind="flag", size=1, optional=absent),
    }


def _as_tensor(value: object, name: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return value


@probe("loss", outputs={
    **_loss_outputs("d"), **_loss_outputs("g"),
    "g_in*": Out(ndim=None, max_ndim=4, max_size=10 * fixtures.BATCH * 28 * 28, pattern=True),
    "d_in*": Out(ndim=None, max_ndim=4, max_size=10 * fixtures.BATCH * 28 * 28, pattern=True),
    "d_out*": Out(max_size=10 * fixtures.BATCH * fixtures.NUM_CLASSES, pattern=True),
    "d_dh*": Out(max_size=10 * fixtures.BATCH * fixtures.NUM_CLASSES, pattern=True),
    "g_dh*": Out(max_size=10 * fixtures.BATCH * fixtures.NUM_CLASSES, pattern=True),
})
def probe_loss(module: object, args: dict) -> dict[str, np.ndarray]:
    """Run ``module.<function>(g, d, x_real[, y_real], device=cpu)`` on the probe nets."""
    fn = getattr(module, args["function"])
    conditional = bool(args.get("conditional", False))
    seed = int(args["seed"])
    g, d = fixtures.make_nets(seed, conditional)
    x_real, y_real = fixtures.make_batch(seed)
    g_rec, d_rec = InputRecorder(g), InputRecorder(d, keep_outputs=True)
    returns = _returns(args)

    def run(g, d) -> dict[str, torch.Tensor]:
        device = torch.device("cpu")
        result = fn(g, d, x_real, y_real, device=device) if conditional else fn(g, d, x_real, device=device)
        if returns == "both":
            if not isinstance(result, (tuple, list)) or len(result) != 2:
                raise TypeError(f"expected a pair (d_loss, g_loss), got {type(result).__name__}"
                                + (f" of length {len(result)}" if isinstance(result, (tuple, list)) else ""))
            return {"d": _as_tensor(result[0], "d_loss"), "g": _as_tensor(result[1], "g_loss")}
        if isinstance(result, (tuple, list)):
            raise TypeError(f"expected one loss tensor ({returns}_loss), got a {type(result).__name__} "
                            f"of length {len(result)}")
        return {returns: _as_tensor(result, f"{returns}_loss")}

    torch.manual_seed(seed + 1)  # the student's own draws start here
    losses = run(g, d)

    out: dict[str, np.ndarray] = {}
    nets = {"d": d, "g": g}
    for name, loss in losses.items():
        out[f"{name}_loss"] = loss.detach().double().reshape(-1).numpy().copy()
        out[f"{name}_loss_shape"] = np.asarray(loss.shape, dtype=np.float64)
        if loss.numel() == 1:
            grad, ok = flat_grad(loss.reshape(()), list(nets[name].parameters()))
        else:
            grad, ok = np.zeros(0), 0
        out[f"{name}_grad"], out[f"{name}_grad_ok"] = grad, np.asarray([ok], dtype=np.float64)
    for name, rec in (("g", g_rec), ("d", d_rec)):
        for i, call in enumerate(rec.calls[:MAX_CALLS]):
            for j, arg in enumerate(call[:2]):
                out[f"{name}_in{i}_{j}"] = arg.double().numpy()
    for i, h in enumerate(d_rec.outputs[:MAX_CALLS]):
        if isinstance(h, torch.Tensor):
            out[f"d_out{i}"] = h.detach().double().reshape(-1).numpy()
    for name, loss in losses.items():
        for i, grad in enumerate(d_rec.output_grads(loss, MAX_CALLS)):
            out[f"{name}_dh{i}"] = np.zeros(0) if grad is None else grad.double().reshape(-1).numpy()
    g_rec.remove()
    d_rec.remove()
    g2, d2 = fixtures.make_nets(seed, conditional, logit_scale=fixtures.EXTREME_LOGIT_SCALE)
    torch.manual_seed(seed + 2)
    for name, loss in run(g2, d2).items():
        out[f"{name}_extreme"] = np.asarray([float(bool(torch.isfinite(loss.detach()).all()))])
    return out

"""Probes for the ``gan`` assignment: call a student loss on probe nets and record everything.

Returned arrays (all float64):
    d_loss, g_loss          the values, flattened; ``*_shape`` their shapes
    d_grad, g_grad          d d_loss/d phi and d g_loss/d theta, flattened over parameters
    d_grad_ok, g_grad_ok    1 when the loss is connected to those parameters, else 0
    g_in{i}_{j}, d_in{i}_{j}  input j of the i-th call of g or d (z or x, then labels y)
"""
import numpy as np
import torch

from . import nets
from .record import InputRecorder, flat_grad


def _as_tensor(value: object, name: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def probe_loss(module: object, args: dict) -> dict[str, np.ndarray]:
    """Run ``module.<function>(g, d, x_real[, y_real], device=cpu)`` on the probe nets."""
    fn = getattr(module, args["function"])
    conditional = bool(args.get("conditional", False))
    seed = int(args["seed"])
    g, d = nets.make_nets(seed, conditional)
    x_real, y_real = nets.make_batch(seed)
    g_rec, d_rec = InputRecorder(g), InputRecorder(d)

    torch.manual_seed(seed + 1)  # the student's own draws start here
    device = torch.device("cpu")
    if conditional:
        result = fn(g, d, x_real, y_real, device=device)
    else:
        result = fn(g, d, x_real, device=device)
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise TypeError(f"expected a pair (d_loss, g_loss), got {type(result).__name__}"
                        + (f" of length {len(result)}" if isinstance(result, (tuple, list)) else ""))
    d_loss, g_loss = _as_tensor(result[0], "d_loss"), _as_tensor(result[1], "g_loss")

    out: dict[str, np.ndarray] = {}
    for name, loss, net in (("d", d_loss, d), ("g", g_loss, g)):
        out[f"{name}_loss"] = loss.detach().double().reshape(-1).numpy().copy()
        out[f"{name}_loss_shape"] = np.asarray(loss.shape, dtype=np.float64)
        if loss.numel() == 1:
            grad, ok = flat_grad(loss.reshape(()), list(net.parameters()))
        else:
            grad, ok = np.zeros(0), 0
        out[f"{name}_grad"], out[f"{name}_grad_ok"] = grad, np.asarray([ok], dtype=np.float64)
    for name, rec in (("g", g_rec), ("d", d_rec)):
        for i, call in enumerate(rec.calls[:8]):
            for j, arg in enumerate(call[:2]):
                out[f"{name}_in{i}_{j}"] = arg.double().numpy()
    return out


PROBES = {"gan_loss": probe_loss}

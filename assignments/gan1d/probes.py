"""Probes of the gan1d assignment: the two losses on logits, and the training loop.

loss returns, for each case c of logits (see :func:`logit_cases`):
    {c}_value, {c}_grad_real, {c}_grad_fake          (discriminator_loss)
    {c}_{kind}_value, {c}_{kind}_grad_fake            (generator_loss, both kinds)
    unknown_kind_raises                               1 if generator_loss(., "wasserstein") raised ValueError
train returns:
    g_steps, d_steps, both_steps    optimiser steps that changed G only / D only / both
    g_backward                      backward passes that reached G's parameters
    g_params                        G's parameters after training, flattened (parent samples G itself)
"""
import numpy as np
import torch

from grader.sandbox.probing import Out, UpdateRecorder, probe

from .fixtures import KINDS, ProbeDiscriminator, ProbeGenerator, logit_cases


def _value_and_grads(loss: object, *inputs: torch.Tensor) -> list[np.ndarray]:
    if not isinstance(loss, torch.Tensor):
        raise TypeError(f"the loss must be a torch.Tensor, got {type(loss).__name__}")
    value = loss.detach().double().reshape(-1).numpy().copy()
    if loss.numel() != 1 or not loss.requires_grad:
        return [value] + [np.zeros(0) for _ in inputs]
    grads = torch.autograd.grad(loss.reshape(()), inputs, allow_unused=True)
    return [value] + [np.zeros(0) if g is None else g.double().reshape(-1).numpy() for g in grads]


def _loss_outputs() -> dict[str, Out]:
    """Per case of logits: the discriminator's value and gradients, or the generator's for each kind."""
    disc = (lambda args: args["function"] != "discriminator_loss")   # noqa: E731 - a predicate on the args
    gen = (lambda args: args["function"] == "discriminator_loss")    # noqa: E731
    n = {case: d_real.numel() for case, (d_real, _) in logit_cases(0).items()}
    out = {"unknown_kind_raises": Out(kind="flag", size=1, optional=gen)}
    for case in n:
        grad = (0, n[case])
        out.update({f"{case}_value": Out(max_size=10_000, optional=disc),
                    f"{case}_grad_real": Out(size=grad, optional=disc),
                    f"{case}_grad_fake": Out(size=grad, optional=disc)})
        for kind in KINDS:
            out.update({f"{case}_{kind}_value": Out(max_size=10_000, optional=gen),
                        f"{case}_{kind}_grad_fake": Out(size=grad, optional=gen)})
    return out


@probe("loss", outputs=_loss_outputs())
def probe_losses(module: object, args: dict) -> dict[str, np.ndarray]:
    """Call the student's discriminator_loss or generator_loss on every case of logits."""
    fn = getattr(module, args["function"])
    out: dict[str, np.ndarray] = {}
    for case, (d_real, d_fake) in logit_cases(int(args["seed"])).items():
        r, f = d_real.clone().requires_grad_(True), d_fake.clone().requires_grad_(True)
        if args["function"] == "discriminator_loss":
            out[f"{case}_value"], out[f"{case}_grad_real"], out[f"{case}_grad_fake"] = \
                _value_and_grads(fn(r, f), r, f)
        else:
            for kind in KINDS:
                f = d_fake.clone().requires_grad_(True)
                out[f"{case}_{kind}_value"], out[f"{case}_{kind}_grad_fake"] = _value_and_grads(fn(f, kind), f)
    if args["function"] == "generator_loss":
        try:
            fn(torch.zeros(4, 1), "wasserstein")
            raised = 0.0
        except ValueError:
            raised = 1.0
        except Exception:  # noqa: BLE001 - another exception type is a wrong answer, not a crash
            raised = 0.0
        out["unknown_kind_raises"] = np.asarray([raised])
    return out


@probe("train", outputs={
    "g_steps": Out(kind="count", size=1), "d_steps": Out(kind="count", size=1),
    "both_steps": Out(kind="count", size=1), "idle_steps": Out(kind="count", size=1),
    "g_backward": Out(kind="count", size=1), "g_mixed": Out(kind="count", size=1),
    "d_mixed": Out(kind="count", size=1),
    "g_params": Out(size=lambda args: sum(p.numel() for p in ProbeGenerator().parameters())),
})
def probe_train(module: object, args: dict) -> dict[str, np.ndarray]:
    """Run the student's train(G, D, steps, k=..., kind=...) on fresh probe nets and record its updates.

    Counts the optimiser steps that changed G only, D only, both, or nothing; the
    backward passes through G; and the updates of each network whose gradient held
    more than its last backward pass (another loss's gradient, not zeroed).
    """
    torch.manual_seed(int(args["seed"]))
    G, D = ProbeGenerator(), ProbeDiscriminator()
    g_params = list(G.parameters())
    with UpdateRecorder({"g": g_params, "d": list(D.parameters())}) as rec:
        module.train(G, D, int(args["steps"]), k=int(args["k"]), kind=args["kind"],
                     batch_size=int(args.get("batch_size", 256)), lr=float(args.get("lr", 1e-3)))
    counts = {"g_steps": rec.count("g"), "d_steps": rec.count("d"), "both_steps": rec.count("g", "d"),
              "idle_steps": rec.count(), "g_backward": rec.backward["g"], "g_mixed": rec.mixed["g"],
              "d_mixed": rec.mixed["d"]}
    out = {key: np.asarray([float(v)], dtype=np.float64) for key, v in counts.items()}
    out["g_params"] = torch.cat([p.detach().reshape(-1) for p in g_params]).double().numpy()
    return out

"""Probes of the vae assignment: the KL, wake, sleep and IWAE functions, and the training loop.

Arrays returned:
    kl:     {case}_value (B,), {case}_grad_mu, {case}_grad_logvar (B*J,) for each case of inputs
    wake / sleep:  value, value_shape, enc_grad, dec_grad, enc_grad_ok, dec_grad_ok,
            encode_in{i}, decode_in{i} (what reached the networks, call by call)
    iwae:   k{k}_value (B,), k{k}_decode_in{i}, k{k}_encode_in{i} for k in (1, 5), and
            exact_value (B,) on the model where log p(x) is exact
    train:  dec_steps, enc_steps, both_steps, dec_lr_ok, enc_lr_ok (steps with the right learning
                rate), history_wake, history_sleep (lengths)
"""

import numpy as np
import torch

from grader.sandbox.probing import Out, UpdateRecorder, flat_grad, probe

from .fixtures import BATCH, EXTREME_LOGIT_SCALE, KS, kl_cases, make_images, make_model

CALLS = Out(ndim=None, max_ndim=4, max_size=64 * 5 * 784, pattern=True)


def _n_params(which: str) -> int:
    model = make_model(0)
    return sum(p.numel() for p in (model.encoder_parameters() if which == "enc" else model.decoder_parameters()))


PHASE = {"value": Out(max_size=100_000), "value_shape": Out(kind="shape", of="value"),
         "value_extreme": Out(kind="flag", size=1, optional=True),
         "enc_grad": Out(size=lambda args: (0, _n_params("enc"))), "enc_grad_ok": Out(kind="flag", size=1),
         "dec_grad": Out(size=lambda args: (0, _n_params("dec"))), "dec_grad_ok": Out(kind="flag", size=1),
         "encode_in*": CALLS, "decode_in*": CALLS}


def _kl_outputs() -> dict[str, Out]:
    out = {}
    for case, (mu, _) in kl_cases(0).items():
        out.update({f"{case}_value": Out(max_size=10_000), f"{case}_shape": Out(kind="shape", of=f"{case}_value"),
                    f"{case}_grad_mu": Out(size=(0, mu.numel())), f"{case}_grad_logvar": Out(size=(0, mu.numel()))})
    return out


def _calls(out: dict, prefix: str, calls: list[torch.Tensor]) -> None:
    for i, t in enumerate(calls[:8]):
        out[f"{prefix}{i}"] = t.double().numpy()


def _tensor(value: object, what: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{what} must return a torch.Tensor, got {type(value).__name__}")
    return value


@probe("kl", outputs=_kl_outputs())
def probe_kl(module: object, args: dict) -> dict[str, np.ndarray]:
    out = {}
    for case, (mu, logvar) in kl_cases(int(args["seed"])).items():
        mu, logvar = mu.clone().requires_grad_(True), logvar.clone().requires_grad_(True)
        kl = _tensor(module.gaussian_kl(mu, logvar), "gaussian_kl")
        out[f"{case}_value"] = kl.detach().double().reshape(-1).numpy().copy()
        out[f"{case}_shape"] = np.asarray(kl.shape, dtype=np.float64)
        if kl.requires_grad:
            g_mu, g_lv = torch.autograd.grad(kl.sum(), (mu, logvar), allow_unused=True)
        else:
            g_mu = g_lv = None
        out[f"{case}_grad_mu"] = np.zeros(0) if g_mu is None else g_mu.double().reshape(-1).numpy()
        out[f"{case}_grad_logvar"] = np.zeros(0) if g_lv is None else g_lv.double().reshape(-1).numpy()
    return out


def _phase(module: object, args: dict, call) -> dict[str, np.ndarray]:
    """Run one wake or sleep loss on a fresh probe model; value, gradients and draws."""
    model = make_model(int(args["seed"]))
    torch.manual_seed(int(args["seed"]) + 1)   # the student's own draws start here
    loss = _tensor(call(model), args["function"])
    out = {"value": loss.detach().double().reshape(-1).numpy().copy(),
           "value_shape": np.asarray(loss.shape, dtype=np.float64)}
    scalar = loss.reshape(()) if loss.numel() == 1 else None
    for name, params in (("enc", model.encoder_parameters()), ("dec", model.decoder_parameters())):
        grad, ok = flat_grad(scalar, params) if scalar is not None else (np.zeros(0), 0)
        out[f"{name}_grad"], out[f"{name}_grad_ok"] = grad, np.asarray([float(ok)])
    _calls(out, "encode_in", model.encode_calls)
    _calls(out, "decode_in", model.decode_calls)
    return out


def _finite_at_extreme_logits(call, seed: int) -> np.ndarray:
    """1 when ``call(model)`` is finite on a probe model whose decoder logits are a few hundred, else 0."""
    torch.manual_seed(seed + 2)
    with torch.no_grad():
        value = _tensor(call(make_model(seed, logit_scale=EXTREME_LOGIT_SCALE)), "the function")
    return np.asarray([float(bool(torch.isfinite(value).all()))])


@probe("wake", outputs=PHASE)
def probe_wake(module: object, args: dict) -> dict[str, np.ndarray]:
    x = make_images(int(args["seed"]))
    out = _phase(module, args, lambda model: module.wake_loss(model, x))
    out["value_extreme"] = _finite_at_extreme_logits(lambda model: module.wake_loss(model, x), int(args["seed"]))
    return out


@probe("sleep", outputs=PHASE)
def probe_sleep(module: object, args: dict) -> dict[str, np.ndarray]:
    return _phase(module, args, lambda model: module.sleep_loss(model, int(args.get("num_samples", 64))))


@probe("iwae", outputs={
    **{f"k{k}_value": Out(max_size=10_000) for k in KS}, "exact_value": Out(max_size=10_000),
    "value_extreme": Out(kind="flag", size=1),
    **{f"k{k}_{net}_in*": CALLS for k in KS for net in ("decode", "encode")}})
def probe_iwae(module: object, args: dict) -> dict[str, np.ndarray]:
    seed, out = int(args["seed"]), {}
    x = make_images(seed)
    for k in KS:
        model = make_model(seed)
        torch.manual_seed(seed + 100 + k)
        with torch.no_grad():
            bound = _tensor(module.iwae_bound(model, x, k), "iwae_bound")
        out[f"k{k}_value"] = bound.detach().double().reshape(-1).numpy().copy()
        _calls(out, f"k{k}_decode_in", model.decode_calls)
        _calls(out, f"k{k}_encode_in", model.encode_calls)
    exact = make_model(seed, exact=True)
    with torch.no_grad():
        out["exact_value"] = _tensor(module.iwae_bound(exact, x, 5), "iwae_bound").double().reshape(-1).numpy()
    out["value_extreme"] = _finite_at_extreme_logits(lambda model: module.iwae_bound(model, x, 5), seed)
    return out


@probe("train", outputs={key: Out(kind="count", size=1) for key in (
    "dec_steps", "enc_steps", "both_steps", "idle_steps", "dec_lr_ok", "enc_lr_ok", "history_wake",
    "history_sleep")})
def probe_train(module: object, args: dict) -> dict[str, np.ndarray]:
    """Run train_wake_sleep for one epoch over a few batches and record which network each step really changed."""
    seed = int(args["seed"])
    model = make_model(seed)
    lr_wake, lr_sleep = 1e-3, 1e-5
    batches = [(make_images(seed + i).reshape(-1, 1, 28, 28), torch.zeros(BATCH, dtype=torch.long))
               for i in range(int(args.get("batches", 3)))]
    with UpdateRecorder({"enc": model.encoder_parameters(), "dec": model.decoder_parameters()}) as rec:
        history = module.train_wake_sleep(model, batches, 1, lr_wake=lr_wake, lr_sleep=lr_sleep)
    counts = {"dec_steps": rec.count("dec"), "enc_steps": rec.count("enc"), "both_steps": rec.count("dec", "enc"),
              "idle_steps": rec.count(), "dec_lr_ok": sum(lr == lr_wake for lr in rec.lrs["dec"]),
              "enc_lr_ok": sum(lr == lr_sleep for lr in rec.lrs["enc"])}
    out = {key: np.asarray([float(v)]) for key, v in counts.items()}
    for phase in ("wake", "sleep"):
        series = history.get(phase, []) if isinstance(history, dict) else []
        out[f"history_{phase}"] = np.asarray([float(len(series))])
    return out

"""Probes for the ``vae`` assignment: the KL, wake, sleep and IWAE functions, and the training loop.

The probe model has the notebook's API (``latent_dim``, ``encode``, ``decode``,
``encoder_parameters``, ``decoder_parameters``) and records what reaches
``encode`` and ``decode``: the parent replays those draws into the reference.

Arrays returned:
    vae_kl:     {case}_value (B,), {case}_grad_mu, {case}_grad_logvar (B*J,) for each case of inputs
    vae_wake / vae_sleep:  value, value_shape, enc_grad, dec_grad, enc_grad_ok, dec_grad_ok,
                encode_in{i}, decode_in{i} (what reached the networks, call by call)
    vae_iwae:   k{k}_value (B,), k{k}_decode_in{i}, k{k}_encode_in{i} for k in (1, 5), and
                exact_value (B,) on the model where log p(x) is exact
    vae_train:  dec_steps, enc_steps, both_steps, dec_lr_ok, enc_lr_ok (steps with the right learning
                rate), history_wake, history_sleep (lengths)
"""

import numpy as np
import torch
import torch.nn as nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from .record import flat_grad, seeded_init

LATENT = 2
BATCH = 16
KS = (1, 5)


class ProbeVAE(nn.Module):
    """A small VAE with the notebook's interface: (B, 784) <-> (B, J)."""

    def __init__(self, latent_dim: int = LATENT, hidden: int = 32, exact: bool = False):
        super().__init__()
        self.latent_dim = latent_dim
        self.exact = exact    # encoder = prior and decoder ignores z: log p(x) = log p(x|z) exactly
        self.enc = nn.Sequential(nn.Linear(784, hidden), nn.Tanh())
        self.enc_mu = nn.Linear(hidden, latent_dim)
        self.enc_logvar = nn.Linear(hidden, latent_dim)
        self.dec = nn.Sequential(nn.Linear(latent_dim, hidden), nn.Tanh(), nn.Linear(hidden, 784))
        self.encode_calls: list[torch.Tensor] = []
        self.decode_calls: list[torch.Tensor] = []

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.encode_calls.append(x.detach().clone())
        h = self.enc(x)                                           # (B, hidden)
        mu, logvar = self.enc_mu(h), self.enc_logvar(h)           # (B, J)
        if self.exact:
            return mu * 0, logvar * 0
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        self.decode_calls.append(z.detach().clone())
        logits = self.dec(z)                                      # (..., 784)
        if self.exact:
            return logits * 0 + self.dec[2].bias                  # the same Bernoulli for every z
        return logits

    def encoder_parameters(self) -> list[nn.Parameter]:
        return [*self.enc.parameters(), *self.enc_mu.parameters(), *self.enc_logvar.parameters()]

    def decoder_parameters(self) -> list[nn.Parameter]:
        return list(self.dec.parameters())


def make_model(seed: int, exact: bool = False) -> ProbeVAE:
    """The probe VAE for ``seed`` (the same weights in the worker and in the grader)."""
    model = ProbeVAE(exact=exact)
    seeded_init(torch.Generator().manual_seed(seed), model)
    return model


def make_images(seed: int, n: int = BATCH) -> torch.Tensor:
    """Images (n, 784) with values in [0, 1], mostly near 0 and 1 like MNIST."""
    gen = torch.Generator().manual_seed(seed + 11)
    return torch.sigmoid(6 * torch.randn(n, 784, generator=gen))


def kl_cases(seed: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """(mu, logvar) of shape (B, J): random, extreme variances, and the prior itself."""
    gen = torch.Generator().manual_seed(seed + 3)
    extreme_lv = torch.tensor([[-30.0, 30.0, -12.0], [20.0, -20.0, 0.0], [-40.0, 5.0, 40.0]])
    return {
        "random": (2 * torch.randn(8, 3, generator=gen), 2 * torch.randn(8, 3, generator=gen)),
        "extreme": (torch.tensor([[0.0, 3.0, -50.0], [1e3, 0.0, 0.0], [0.0, -1.0, 2.0]]), extreme_lv),
        "prior": (torch.zeros(4, 3), torch.zeros(4, 3)),
    }


def _calls(out: dict, prefix: str, calls: list[torch.Tensor]) -> None:
    for i, t in enumerate(calls[:8]):
        out[f"{prefix}{i}"] = t.double().numpy()


def _tensor(value: object, what: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{what} must return a torch.Tensor, got {type(value).__name__}")
    return value


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


def probe_wake(module: object, args: dict) -> dict[str, np.ndarray]:
    x = make_images(int(args["seed"]))
    return _phase(module, args, lambda model: module.wake_loss(model, x))


def probe_sleep(module: object, args: dict) -> dict[str, np.ndarray]:
    return _phase(module, args, lambda model: module.sleep_loss(model, int(args.get("num_samples", 64))))


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
    return out


def exact_log_px(seed: int) -> np.ndarray:
    """log p(x) on the exact probe model: the decoder ignores z, so it is log p(x|z) for any z."""
    model, x = make_model(seed, exact=True), make_images(seed)
    with torch.no_grad():
        logits = model.decode(torch.zeros(x.shape[0], LATENT))
        return (-torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none")
                .sum(-1)).double().numpy()


def probe_train(module: object, args: dict) -> dict[str, np.ndarray]:
    """Run train_wake_sleep for one epoch over a few batches and count which networks each step changed."""
    seed = int(args["seed"])
    model = make_model(seed)
    enc, dec = model.encoder_parameters(), model.decoder_parameters()
    counts = {"dec_steps": 0, "enc_steps": 0, "both_steps": 0, "dec_lr_ok": 0, "enc_lr_ok": 0}
    lr_wake, lr_sleep = 1e-3, 1e-5
    versions = {"enc": [p._version for p in enc], "dec": [p._version for p in dec]}

    def after_step(opt, _args, _kwargs) -> None:
        now = {"enc": [p._version for p in enc], "dec": [p._version for p in dec]}
        e, d = now["enc"] != versions["enc"], now["dec"] != versions["dec"]
        lrs = {float(g.get("lr", -1)) for g in opt.param_groups}
        if e and d:
            counts["both_steps"] += 1
        elif d:
            counts["dec_steps"] += 1
            counts["dec_lr_ok"] += lrs == {lr_wake}
        elif e:
            counts["enc_steps"] += 1
            counts["enc_lr_ok"] += lrs == {lr_sleep}
        versions.update(now)

    batches = [(make_images(seed + i).reshape(-1, 1, 28, 28), torch.zeros(BATCH, dtype=torch.long))
               for i in range(int(args.get("batches", 3)))]
    hook = register_optimizer_step_post_hook(after_step)
    try:
        history = module.train_wake_sleep(model, batches, 1, lr_wake=lr_wake, lr_sleep=lr_sleep)
    finally:
        hook.remove()
    out = {key: np.asarray([float(v)]) for key, v in counts.items()}
    for phase in ("wake", "sleep"):
        series = history.get(phase, []) if isinstance(history, dict) else []
        out[f"history_{phase}"] = np.asarray([float(len(series))])
    return out


PROBES = {"vae_kl": probe_kl, "vae_wake": probe_wake, "vae_sleep": probe_sleep,
          "vae_iwae": probe_iwae, "vae_train": probe_train}

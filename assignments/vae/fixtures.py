"""Probe model and inputs of the vae assignment, rebuilt identically from a seed on both sides of the
trust boundary (the probes in the sandbox, the checks in the grader).

The probe model has the notebook's API (``latent_dim``, ``encode``, ``decode``,
``encoder_parameters``, ``decoder_parameters``) and records what reaches
``encode`` and ``decode``: the grader replays those draws into the reference.
"""
import numpy as np
import torch
import torch.nn as nn

from grader.sandbox.probing import seeded_init

LATENT = 2
BATCH = 64       # 128 recovered noise values per draw: enough to tell sigma from sigma^2 or U[0, 1] from N(0, 1)
KS = (1, 5)
# Where the usual mistakes in drawing z ~ q(z|x) separate: log sigma^2 near -4 (sigma ~ 0.14, sigma^2 ~ 0.02,
# log sigma ~ -2, 1: each scale at least twice or half any other, where log sigma^2 near 0 would make sigma,
# sigma^2 and 1 coincide), and means away from 0 (a draw from the prior is not one from q).
LOGVAR_SHIFT = -4.0
MU_SHIFT = (2.0, 1.5)
DECODER_LOGIT_SPREAD = 3.0   # pixel probabilities from about 0.05 to 0.95: samples, modes and means differ


class ProbeVAE(nn.Module):
    """A small VAE with the notebook's interface: (B, 784) <-> (B, J)."""

    def __init__(self, latent_dim: int = LATENT, hidden: int = 32, exact: bool = False):
        super().__init__()
        self.latent_dim = latent_dim
        self.exact = exact    # encoder = prior and decoder ignores z: log p(x) = log p(x|z) exactly
        self.logit_scale = 1.0
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
        return logits * self.logit_scale

    def encoder_parameters(self) -> list[nn.Parameter]:
        return [*self.enc.parameters(), *self.enc_mu.parameters(), *self.enc_logvar.parameters()]

    def decoder_parameters(self) -> list[nn.Parameter]:
        return list(self.dec.parameters())


EXTREME_LOGIT_SCALE = 200.0   # decoder logits of a few hundred: a confident decoder's


def make_model(seed: int, exact: bool = False, logit_scale: float = 1.0) -> ProbeVAE:
    """The probe VAE for ``seed`` (the same weights in the worker and in the grader); ``logit_scale``
    multiplies the decoder's logits (the numerical stability policy: losses must stay finite)."""
    model = ProbeVAE(exact=exact)
    gen = torch.Generator().manual_seed(seed)
    seeded_init(gen, model)
    with torch.no_grad():
        model.enc_logvar.bias.add_(LOGVAR_SHIFT)                   # log sigma^2 about -4, not about 0
        model.enc_mu.bias.add_(torch.tensor(MU_SHIFT))             # q(z|x) away from the prior
        model.dec[2].weight.mul_(DECODER_LOGIT_SPREAD)
        model.dec[2].bias.uniform_(-DECODER_LOGIT_SPREAD, DECODER_LOGIT_SPREAD, generator=gen)
    model.logit_scale = logit_scale
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


def exact_log_px(seed: int) -> np.ndarray:
    """log p(x) on the exact probe model: the decoder ignores z, so it is log p(x|z) for any z."""
    model, x = make_model(seed, exact=True), make_images(seed)
    with torch.no_grad():
        logits = model.decode(torch.zeros(x.shape[0], LATENT))
        return (-torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none")
                .sum(-1)).double().numpy()

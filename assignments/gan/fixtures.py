"""Probe networks and inputs of the gan assignment, rebuilt identically from a seed on both sides
of the trust boundary (the probes in the sandbox, the checks in the grader).

They are small (so a probe takes milliseconds) but keep the interface and the
shapes of the course networks: images (B, 1, 28, 28), ``g.dim_z``, logits (B,),
``g(z, y)`` and ``d(x, y)`` for the conditional pair. Smooth activations keep
second derivatives non-zero, which the gradient-penalty check relies on.
"""
import functools

import torch
import torch.nn as nn
import torch.nn.functional as F

from grader.sandbox.probing import seeded_init

BATCH = 32
DIM_Z = 64
NUM_CLASSES = 10
HIDDEN = 32


class ProbeGenerator(nn.Module):
    """z (B, dim_z) [and labels y (B,)] -> images (B, 1, 28, 28)."""

    def __init__(self, dim_z: int = DIM_Z, num_classes: int = 0):
        super().__init__()
        self.dim_z = dim_z
        self.num_classes = num_classes
        self.fc1 = nn.Linear(dim_z + num_classes, HIDDEN)
        self.fc2 = nn.Linear(HIDDEN, 28 * 28)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes:
            z = torch.cat([z, F.one_hot(y.long(), self.num_classes).to(z.dtype)], dim=1)
        h = torch.tanh(self.fc1(z))                       # (B, HIDDEN)
        return self.fc2(h).reshape(z.shape[0], 1, 28, 28)  # (B, 1, 28, 28)


class ProbeDiscriminator(nn.Module):
    """images (B, 1, 28, 28) [and labels y (B,)] -> logits (B,); projection form when conditional."""

    def __init__(self, num_classes: int = 0):
        super().__init__()
        self.num_classes = num_classes
        self.fc1 = nn.Linear(28 * 28, HIDDEN)
        self.fc2 = nn.Linear(HIDDEN, max(num_classes, 1))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = torch.tanh(self.fc1(x.reshape(x.shape[0], -1)))  # (B, HIDDEN)
        out = self.fc2(h)                                    # (B, C)
        if self.num_classes:
            return out.gather(1, y.long().reshape(-1, 1)).squeeze(1)
        return out.squeeze(1)                                # (B,)


EXTREME_LOGIT_SCALE = 60.0   # logits of about +-200, as a confident discriminator's in training


def make_nets(seed: int, conditional: bool, logit_scale: float = 1.0) -> tuple[ProbeGenerator, ProbeDiscriminator]:
    """The probe pair for ``seed``; weights scaled so logits span both signs (and ``logit_scale`` times that)."""
    c = NUM_CLASSES if conditional else 0
    g, d = ProbeGenerator(DIM_Z, c), ProbeDiscriminator(c)
    seeded_init(torch.Generator().manual_seed(seed), g, d)
    with torch.no_grad():
        d.fc2.weight.mul_(4.0 * logit_scale)  # logits of a few units: losses far from their values at 0
    return g, d


def make_batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A 'real' batch x_real (B, 1, 28, 28) in [-1, 1] and labels y_real (B,) for ``seed`` (fresh
    tensors each call: a caller may change its own)."""
    x_real, y_real = _batch(seed)
    return x_real.clone(), y_real.clone()


@functools.lru_cache(maxsize=8)
def _batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed + 7)
    x_real = torch.rand(BATCH, 1, 28, 28, generator=gen) * 2 - 1
    y_real = torch.randint(0, NUM_CLASSES, (BATCH,), generator=gen)
    return x_real, y_real

"""Probe networks and logits of the gan1d assignment, rebuilt identically from a seed on both sides
of the trust boundary (the probes in the sandbox, the checks in the grader)."""
import torch
import torch.nn as nn

KINDS = ("minimax", "nonsaturating")


class ProbeGenerator(nn.Module):
    """The notebook's generator: (B, 1) noise -> (B, 1) samples."""

    def __init__(self, hidden: int = 32):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(1, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                                 nn.Linear(hidden, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class ProbeDiscriminator(nn.Module):
    """The notebook's discriminator: (B, 1) samples -> (B, 1) logits."""

    def __init__(self, hidden: int = 32):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(1, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden),
                                 nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def logit_cases(seed: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """(d_real, d_fake) logits of shape (B, 1): typical values, and extremes where naive logs overflow."""
    gen = torch.Generator().manual_seed(seed)
    typical = (3 * torch.randn(64, 1, generator=gen), 3 * torch.randn(64, 1, generator=gen) - 1)
    ext = torch.tensor([-200.0, -120.0, -60.0, -20.0, 20.0, 60.0, 120.0, 200.0]).reshape(-1, 1)
    return {"typical": typical, "extreme": (ext, ext.flip(0))}

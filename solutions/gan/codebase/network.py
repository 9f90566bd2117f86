"""Generator and discriminator networks for Fashion-MNIST (28x28, one channel).

The layer sizes follow the original CS236 homework 3 codebase so that code
written for that course runs here unchanged. Images are normalised to [-1, 1]
and the generator has no output non-linearity.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class Reshape(nn.Module):
    """Reshape a (B, prod(shape)) batch to (B, *shape)."""

    def __init__(self, *shape: int):
        super().__init__()
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)


def _generator_trunk(dim_in: int) -> nn.Sequential:
    """(B, dim_in) -> (B, 1, 28, 28) through two PixelShuffle upsamplings."""
    return nn.Sequential(
        nn.Linear(dim_in, 512),
        nn.BatchNorm1d(512),
        nn.ReLU(),
        nn.Linear(512, 64 * 7 * 7),
        nn.BatchNorm1d(64 * 7 * 7),
        nn.ReLU(),
        Reshape(64, 7, 7),                      # (B, 64, 7, 7)
        nn.PixelShuffle(2),                     # (B, 16, 14, 14)
        nn.Conv2d(16, 32, kernel_size=3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.PixelShuffle(2),                     # (B, 8, 28, 28)
        nn.Conv2d(8, 1, kernel_size=3, padding=1),  # (B, 1, 28, 28)
    )


def _discriminator_trunk(dim_out: int) -> nn.Sequential:
    """(B, 1, 28, 28) -> (B, dim_out) logits."""
    return nn.Sequential(
        nn.Conv2d(1, 32, kernel_size=4, stride=2, padding=1),   # (B, 32, 14, 14)
        nn.LeakyReLU(0.1),
        nn.Conv2d(32, 64, kernel_size=4, stride=2, padding=1),  # (B, 64, 7, 7)
        nn.LeakyReLU(0.1),
        nn.Flatten(),                                           # (B, 3136)
        nn.Linear(3136, 512),
        nn.LeakyReLU(0.1),
        nn.Linear(512, dim_out),
    )


class Generator(nn.Module):
    """G(z): z of shape (B, dim_z) -> images (B, 1, 28, 28)."""

    def __init__(self, dim_z: int = 64):
        super().__init__()
        self.dim_z = dim_z
        self.net = _generator_trunk(dim_z)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class Discriminator(nn.Module):
    """D(x): images (B, 1, 28, 28) -> logits h(x) of shape (B,)."""

    def __init__(self):
        super().__init__()
        self.net = _discriminator_trunk(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


class ConditionalGenerator(nn.Module):
    """G(z, y): z (B, dim_z) and labels y (B,) -> images (B, 1, 28, 28)."""

    def __init__(self, dim_z: int = 64, num_classes: int = 10):
        super().__init__()
        self.dim_z = dim_z
        self.num_classes = num_classes
        self.net = _generator_trunk(dim_z + num_classes)  # Linear(74, 512) for the defaults

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        y_onehot = F.one_hot(y, self.num_classes).to(z.dtype)  # (B, num_classes)
        return self.net(torch.cat([z, y_onehot], dim=1))


class ConditionalDiscriminator(nn.Module):
    """Projection discriminator: h(x, y) = y^T (A phi(x) + b), logits of shape (B,).

    The trunk computes phi(x); its last Linear layer holds A and b and outputs
    one logit per class, and the one-hot y picks the logit of the given class.
    """

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.num_classes = num_classes
        self.net = _discriminator_trunk(num_classes)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h_all = self.net(x)                                   # (B, num_classes)
        return h_all.gather(1, y.long().unsqueeze(1)).squeeze(1)  # (B,)

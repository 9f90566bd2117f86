"""GAN losses for homework 3: minimax, non-saturating, conditional, WGAN-GP.

Each function takes the generator ``g``, the discriminator ``d`` and a batch of
real images, draws its own latent codes, and returns the pair
``(d_loss, g_loss)`` of scalar tensors. The training script minimises
``d_loss`` over the discriminator's parameters and ``g_loss`` over the
generator's parameters.

Conventions:
    ``g.dim_z`` is the latent size k; sample ``z ~ N(0, I)`` with
    ``torch.randn(batch_size, g.dim_z, device=device)``.
    ``d(x)`` returns the discriminator's logits h(x) of shape (B,), so that
    D(x) = sigmoid(h(x)). Work with logits: ``F.logsigmoid(h)`` is log D(x)
    and ``F.logsigmoid(-h)`` is log(1 - D(x)), both numerically stable.
"""
import torch
import torch.nn.functional as F


def loss_minimax(g, d, x_real, *, device):
    """Discriminator loss and the original (minimax, saturating) generator loss.

    L_D = -E_x[log D(x)] - E_z[log(1 - D(G(z)))]
    L_G =  E_z[log(1 - D(G(z)))]

    Args:
        g (codebase.network.Generator): generator, ``g.dim_z`` is the latent size
        d (codebase.network.Discriminator): discriminator, returns logits (B,)
        x_real (torch.Tensor): real images, shape (B, 1, 28, 28)
        device (torch.device): where to create new tensors

    Returns:
        d_loss (torch.Tensor): scalar discriminator loss, a batch mean
        g_loss (torch.Tensor): scalar generator loss, a batch mean

    Hint: log(1 - sigmoid(h)) = logsigmoid(-h).
    """
    batch_size = x_real.shape[0]
    z = torch.randn(batch_size, g.dim_z, device=device)
    x_fake = g(z)
    d_real = d(x_real)
    d_fake = d(x_fake)
    d_loss = -F.logsigmoid(d_real).mean() - F.logsigmoid(-d_fake).mean()
    g_loss = F.logsigmoid(-d_fake).mean()
    return d_loss, g_loss


def loss_nonsaturating(g, d, x_real, *, device):
    """Discriminator loss and the non-saturating generator loss.

    L_D = -E_x[log D(x)] - E_z[log(1 - D(G(z)))]
    L_G = -E_z[log D(G(z))]

    Args:
        g (codebase.network.Generator): generator, ``g.dim_z`` is the latent size
        d (codebase.network.Discriminator): discriminator, returns logits (B,)
        x_real (torch.Tensor): real images, shape (B, 1, 28, 28)
        device (torch.device): where to create new tensors

    Returns:
        d_loss (torch.Tensor): scalar discriminator loss, a batch mean
        g_loss (torch.Tensor): scalar generator loss, a batch mean

    Hint: use F.logsigmoid on the logits rather than log(sigmoid(.)), which
    underflows to -inf once the discriminator is confident.
    """
    batch_size = x_real.shape[0]
    z = torch.randn(batch_size, g.dim_z, device=device)
    x_fake = g(z)
    d_real = d(x_real)
    d_fake = d(x_fake)
    d_loss = -F.logsigmoid(d_real).mean() - F.logsigmoid(-d_fake).mean()
    g_loss = -F.logsigmoid(d_fake).mean()
    return d_loss, g_loss


def conditional_loss_nonsaturating(g, d, x_real, y_real, *, device):
    B = x_real.shape[0]
    x_fake = g(torch.randn(B, g.dim_z, device=device), y_real)
    y_wrong = (y_real + 1) % 10
    d_real, d_fake = d(x_real, y_real), d(x_fake, y_wrong)
    d_loss = -F.logsigmoid(d_real).mean() - F.logsigmoid(-d_fake).mean()
    g_loss = -F.logsigmoid(d_fake).mean()
    return d_loss, g_loss


def loss_wasserstein_gp(g, d, x_real, *, device):
    B = x_real.shape[0]
    x_fake = g(torch.randn(B, g.dim_z, device=device))
    alpha = torch.rand(B, 1, 1, 1, device=device)
    x_r = (alpha * x_fake + (1 - alpha) * x_real).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(d(x_r).sum(), x_r)
    penalty = ((grad.reshape(B, -1).norm(dim=1) - 1) ** 2).mean()
    d_loss = d(x_fake).mean() - d(x_real).mean() + 10 * penalty
    g_loss = -d(x_fake).mean()
    return d_loss, g_loss


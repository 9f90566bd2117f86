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
    z = torch.randn(x_real.shape[0], g.dim_z, device=device)
    d_real, d_fake = d(x_real), d(g(z))
    d_loss = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()   # -log D = softplus(-h)
    g_loss = -F.softplus(d_fake).mean()
    return d_loss, g_loss


def loss_nonsaturating(g, d, x_real, *, device):
    batch_size = x_real.shape[0]
    z = torch.randn(batch_size, g.dim_z, device=device)
    x_fake = g(z)
    ones = torch.ones(batch_size, device=device)
    zeros = torch.zeros(batch_size, device=device)
    d_loss = F.binary_cross_entropy_with_logits(d(x_real), ones) + \
        F.binary_cross_entropy_with_logits(d(x_fake.detach()), zeros)
    g_loss = F.binary_cross_entropy_with_logits(d(x_fake), ones)
    return d_loss, g_loss


def conditional_loss_nonsaturating(g, d, x_real, y_real, *, device):
    B = x_real.shape[0]
    x_fake = g(torch.randn(B, g.dim_z, device=device), y_real)
    ones, zeros = torch.ones(B, device=device), torch.zeros(B, device=device)
    d_loss = F.binary_cross_entropy_with_logits(d(x_real, y_real), ones) + \
        F.binary_cross_entropy_with_logits(d(x_fake.detach(), y_real), zeros)
    g_loss = F.binary_cross_entropy_with_logits(d(x_fake, y_real), ones)
    return d_loss, g_loss


def loss_wasserstein_gp(g, d, x_real, *, device):
    B = x_real.shape[0]
    x_fake = g(torch.randn(B, g.dim_z, device=device))
    alpha = torch.rand(B, device=device).view(-1, 1, 1, 1)
    x_hat = (alpha * x_real + (1 - alpha) * x_fake.detach()).requires_grad_(True)
    d_hat = d(x_hat)
    grad = torch.autograd.grad(outputs=d_hat, inputs=x_hat, grad_outputs=torch.ones_like(d_hat),
                               create_graph=True, retain_graph=True)[0]
    gp = ((grad.pow(2).sum(dim=[1, 2, 3]).sqrt() - 1) ** 2).mean()
    d_loss = d(x_fake.detach()).mean() - d(x_real).mean() + 10.0 * gp
    g_loss = -d(x_fake).mean()
    return d_loss, g_loss


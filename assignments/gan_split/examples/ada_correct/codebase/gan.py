import torch
import torch.nn.functional as F


def loss_nonsaturating_d(g, d, x_real, *, device):
    z = torch.randn(x_real.shape[0], g.dim_z, device=device)
    logits_real, logits_fake = d(x_real), d(g(z))
    # -log sigmoid(h) = softplus(-h), -log(1 - sigmoid(h)) = softplus(h)
    return F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean()


def loss_nonsaturating_g(g, d, x_real, *, device):
    z = torch.randn(x_real.shape[0], g.dim_z, device=device)
    logits_fake = d(g(z))
    return F.binary_cross_entropy_with_logits(logits_fake, torch.ones_like(logits_fake))


def conditional_loss_nonsaturating_d(g, d, x_real, y_real, *, device):
    z = torch.randn(x_real.shape[0], g.dim_z, device=device)
    with torch.no_grad():
        x_fake = g(z, y_real)
    return F.softplus(-d(x_real, y_real)).mean() + F.softplus(d(x_fake, y_real)).mean()


def conditional_loss_nonsaturating_g(g, d, x_real, y_real, *, device):
    z = torch.randn(x_real.shape[0], g.dim_z, device=device)
    return F.softplus(-d(g(z, y_real), y_real)).mean()


def loss_wasserstein_gp_d(g, d, x_real, *, device):
    batch_size = x_real.shape[0]
    z = torch.randn(batch_size, g.dim_z, device=device)
    x_fake = g(z).detach()
    alpha = torch.rand(batch_size, 1, 1, 1, device=device)
    x_hat = (x_real + alpha * (x_fake - x_real)).requires_grad_(True)
    scores = d(x_hat)
    grads = torch.autograd.grad(scores, x_hat, grad_outputs=torch.ones_like(scores), create_graph=True)[0]
    penalty = (grads.flatten(1).norm(2, dim=1) - 1).pow(2).mean()
    return d(x_fake).mean() - d(x_real).mean() + 10.0 * penalty


def loss_wasserstein_gp_g(g, d, x_real, *, device):
    z = torch.randn(x_real.shape[0], g.dim_z, device=device)
    return -d(g(z)).mean()

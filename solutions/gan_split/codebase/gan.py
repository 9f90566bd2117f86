"""GAN losses, current course version: one function per loss.

Each function takes the generator ``g``, the discriminator ``d`` and a batch of
real images, draws its own latent codes, and returns one scalar loss tensor:
the ``_d`` functions the discriminator's (minimised over its parameters), the
``_g`` functions the generator's (minimised over the generator's parameters).
The training script calls the ``_d`` loss, steps the discriminator, then calls
the ``_g`` loss and steps the generator.

Conventions:
    ``g.dim_z`` is the latent size k; sample ``z ~ N(0, I)`` with
    ``torch.randn(batch_size, g.dim_z, device=device)``.
    ``d(x)`` returns the discriminator's logits h(x) of shape (B,), so that
    D(x) = sigmoid(h(x)). Work with logits: ``F.logsigmoid(h)`` is log D(x)
    and ``F.logsigmoid(-h)`` is log(1 - D(x)), both numerically stable.
"""
import torch
import torch.nn.functional as F


def loss_nonsaturating_d(g, d, x_real, *, device):
    """The discriminator's loss of the standard GAN.

    L_D = -E_x[log D(x)] - E_z[log(1 - D(G(z)))]

    Args:
        g (codebase.network.Generator): generator, ``g.dim_z`` is the latent size
        d (codebase.network.Discriminator): discriminator, returns logits (B,)
        x_real (torch.Tensor): real images, shape (B, 1, 28, 28)
        device (torch.device): where to create new tensors

    Returns:
        d_loss (torch.Tensor): scalar discriminator loss, a batch mean
    """
    # BEGIN SOLUTION: draw one latent code per real image, generate the fakes, take the
    # discriminator's logits on the real and on the fake batch, and return the batch mean
    # of the loss above (no gradient needs to reach the generator here).
    batch_size = x_real.shape[0]
    z = torch.randn(batch_size, g.dim_z, device=device)
    x_fake = g(z).detach()
    d_loss = -F.logsigmoid(d(x_real)).mean() - F.logsigmoid(-d(x_fake)).mean()
    # END SOLUTION
    return d_loss


def loss_nonsaturating_g(g, d, x_real, *, device):
    """The non-saturating generator loss.

    L_G = -E_z[log D(G(z))]

    Args:
        g (codebase.network.Generator): generator, ``g.dim_z`` is the latent size
        d (codebase.network.Discriminator): discriminator, returns logits (B,)
        x_real (torch.Tensor): real images, shape (B, 1, 28, 28); only its batch size is used
        device (torch.device): where to create new tensors

    Returns:
        g_loss (torch.Tensor): scalar generator loss, a batch mean
    """
    # BEGIN SOLUTION: draw a batch of latent codes, generate the fakes, take the
    # discriminator's logits on them, and return the batch mean of the loss above.
    batch_size = x_real.shape[0]
    z = torch.randn(batch_size, g.dim_z, device=device)
    g_loss = -F.logsigmoid(d(g(z))).mean()
    # END SOLUTION
    return g_loss


def conditional_loss_nonsaturating_d(g, d, x_real, y_real, *, device):
    """The discriminator's loss of a class-conditional GAN (projection discriminator).

    Fakes are generated for the labels of the real batch, and every image is
    scored together with its label:
    L_D = -E_(x,y)[log D(x, y)] - E_(z,y)[log(1 - D(G(z, y), y))]

    Args:
        g (codebase.network.ConditionalGenerator): ``g(z, y)``, ``g.dim_z`` is the latent size
        d (codebase.network.ConditionalDiscriminator): ``d(x, y)`` returns logits (B,)
        x_real (torch.Tensor): real images, shape (B, 1, 28, 28)
        y_real (torch.Tensor): their integer class labels, shape (B,)
        device (torch.device): where to create new tensors

    Returns:
        d_loss (torch.Tensor): scalar discriminator loss, a batch mean
    """
    # BEGIN SOLUTION: as in loss_nonsaturating_d, with the generator and the discriminator
    # both given the batch's labels y_real.
    batch_size = x_real.shape[0]
    z = torch.randn(batch_size, g.dim_z, device=device)
    x_fake = g(z, y_real).detach()
    d_loss = -F.logsigmoid(d(x_real, y_real)).mean() - F.logsigmoid(-d(x_fake, y_real)).mean()
    # END SOLUTION
    return d_loss


def conditional_loss_nonsaturating_g(g, d, x_real, y_real, *, device):
    """The non-saturating generator loss of a class-conditional GAN.

    L_G = -E_(z,y)[log D(G(z, y), y)]

    Args:
        g (codebase.network.ConditionalGenerator): ``g(z, y)``, ``g.dim_z`` is the latent size
        d (codebase.network.ConditionalDiscriminator): ``d(x, y)`` returns logits (B,)
        x_real (torch.Tensor): real images, shape (B, 1, 28, 28); only its batch size is used
        y_real (torch.Tensor): the class labels to generate, shape (B,)
        device (torch.device): where to create new tensors

    Returns:
        g_loss (torch.Tensor): scalar generator loss, a batch mean
    """
    # BEGIN SOLUTION: as in loss_nonsaturating_g, generating and scoring the fakes with the
    # batch's labels y_real.
    batch_size = x_real.shape[0]
    z = torch.randn(batch_size, g.dim_z, device=device)
    g_loss = -F.logsigmoid(d(g(z, y_real), y_real)).mean()
    # END SOLUTION
    return g_loss


def loss_wasserstein_gp_d(g, d, x_real, *, device):
    """The WGAN-GP critic loss, with its gradient penalty (lambda = 10).

    L_D = E_z[D(G(z))] - E_x[D(x)] + lambda * E_r[(||grad_x D(r)||_2 - 1)^2]
    where r = alpha * G(z) + (1 - alpha) * x with one alpha ~ U[0, 1] per example.
    Here ``d`` returns the critic's raw output: do not apply a sigmoid.

    Args:
        g (codebase.network.Generator): generator, ``g.dim_z`` is the latent size
        d (codebase.network.Discriminator): critic, returns real values (B,)
        x_real (torch.Tensor): real images, shape (B, 1, 28, 28)
        device (torch.device): where to create new tensors

    Returns:
        d_loss (torch.Tensor): scalar critic loss, a batch mean

    Hint: draw alpha with a shape that broadcasts over the pixels of each example.
    The penalty must itself be differentiable with respect to the critic's
    parameters, and the norm is taken per example over all of its pixels.
    """
    # BEGIN SOLUTION: generate a batch of fakes; draw one interpolation weight per example and
    # form the points r between fakes and reals; take the critic's gradient with respect to r
    # (keeping the graph, so the penalty can be differentiated), its norm per example, and
    # return the critic terms plus lambda times the mean squared distance of that norm from 1.
    batch_size = x_real.shape[0]
    z = torch.randn(batch_size, g.dim_z, device=device)
    x_fake = g(z).detach()
    alpha = torch.rand(batch_size, 1, 1, 1, device=device)
    x_r = (alpha * x_fake + (1 - alpha) * x_real).requires_grad_(True)   # (B, 1, 28, 28)
    (grad,) = torch.autograd.grad(d(x_r).sum(), x_r, create_graph=True)
    grad_norm = grad.reshape(batch_size, -1).norm(dim=1)                 # (B,)
    d_loss = d(x_fake).mean() - d(x_real).mean() + 10 * ((grad_norm - 1) ** 2).mean()
    # END SOLUTION
    return d_loss


def loss_wasserstein_gp_g(g, d, x_real, *, device):
    """The WGAN generator loss.

    L_G = -E_z[D(G(z))]

    Args:
        g (codebase.network.Generator): generator, ``g.dim_z`` is the latent size
        d (codebase.network.Discriminator): critic, returns real values (B,)
        x_real (torch.Tensor): real images, shape (B, 1, 28, 28); only its batch size is used
        device (torch.device): where to create new tensors

    Returns:
        g_loss (torch.Tensor): scalar generator loss, a batch mean
    """
    # BEGIN SOLUTION: generate a batch of fakes and return minus the critic's mean output on them.
    batch_size = x_real.shape[0]
    z = torch.randn(batch_size, g.dim_z, device=device)
    g_loss = -d(g(z)).mean()
    # END SOLUTION
    return g_loss

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
    # BEGIN SOLUTION: draw one latent code per real image and generate the fakes; take the discriminator's
    # logits on the real and on the fake images, and return the two batch means above, each
    # written with F.logsigmoid on the logits.
    batch_size = x_real.shape[0]
    z = torch.randn(batch_size, g.dim_z, device=device)
    x_fake = g(z)
    d_real = d(x_real)
    d_fake = d(x_fake)
    d_loss = -F.logsigmoid(d_real).mean() - F.logsigmoid(-d_fake).mean()
    g_loss = F.logsigmoid(-d_fake).mean()
    # END SOLUTION
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
    # BEGIN SOLUTION: draw one latent code per real image and generate the fakes; take the discriminator's
    # logits on the real and on the fake images, and return the two batch means above, each
    # written with F.logsigmoid on the logits.
    batch_size = x_real.shape[0]
    z = torch.randn(batch_size, g.dim_z, device=device)
    x_fake = g(z)
    d_real = d(x_real)
    d_fake = d(x_fake)
    d_loss = -F.logsigmoid(d_real).mean() - F.logsigmoid(-d_fake).mean()
    g_loss = -F.logsigmoid(d_fake).mean()
    # END SOLUTION
    return d_loss, g_loss


def conditional_loss_nonsaturating(g, d, x_real, y_real, *, device):
    """Non-saturating losses for a class-conditional GAN.

    Fake images are generated for the same labels as the real batch, and the
    projection discriminator scores every image together with its label:
    L_D = -E_(x,y)[log D(x, y)] - E_(z,y)[log(1 - D(G(z, y), y))]
    L_G = -E_(z,y)[log D(G(z, y), y)]

    Args:
        g (codebase.network.ConditionalGenerator): ``g(z, y)``, ``g.dim_z`` is the latent size
        d (codebase.network.ConditionalDiscriminator): ``d(x, y)`` returns logits (B,)
        x_real (torch.Tensor): real images, shape (B, 1, 28, 28)
        y_real (torch.Tensor): their integer class labels, shape (B,)
        device (torch.device): where to create new tensors

    Returns:
        d_loss (torch.Tensor): scalar discriminator loss, a batch mean
        g_loss (torch.Tensor): scalar generator loss, a batch mean
    """
    # BEGIN SOLUTION: as in loss_nonsaturating, but generate the fakes for the batch's own labels y_real,
    # and give the discriminator those labels with every image it scores.
    batch_size = x_real.shape[0]
    z = torch.randn(batch_size, g.dim_z, device=device)
    x_fake = g(z, y_real)
    d_real = d(x_real, y_real)
    d_fake = d(x_fake, y_real)
    d_loss = -F.logsigmoid(d_real).mean() - F.logsigmoid(-d_fake).mean()
    g_loss = -F.logsigmoid(d_fake).mean()
    # END SOLUTION
    return d_loss, g_loss


def loss_wasserstein_gp(g, d, x_real, *, device):
    """WGAN-GP critic loss with gradient penalty (lambda = 10) and generator loss.

    L_D = E_z[D(G(z))] - E_x[D(x)] + lambda * E_r[(||grad_x D(r)||_2 - 1)^2]
    L_G = -E_z[D(G(z))]
    where r = alpha * G(z) + (1 - alpha) * x with one alpha ~ U[0, 1] per example.
    Here ``d`` returns the critic's raw output: do not apply a sigmoid.

    Args:
        g (codebase.network.Generator): generator, ``g.dim_z`` is the latent size
        d (codebase.network.Discriminator): critic, returns real values (B,)
        x_real (torch.Tensor): real images, shape (B, 1, 28, 28)
        device (torch.device): where to create new tensors

    Returns:
        d_loss (torch.Tensor): scalar critic loss, a batch mean
        g_loss (torch.Tensor): scalar generator loss, a batch mean

    Hint: draw alpha with shape (B, 1, 1, 1) so that it broadcasts over pixels.
    The penalty must itself be differentiable with respect to the critic's
    parameters: use ``torch.autograd.grad(d(r).sum(), r, create_graph=True)``.
    The norm is taken per example over all pixels of that example.
    """
    # BEGIN SOLUTION: generate a batch of fakes; draw one interpolation weight per example and form the points
    # between fakes and reals; take the critic's gradient at those points with respect to its input,
    # keeping the graph so that the penalty can itself be differentiated; take its norm per example
    # over all pixels, and return the critic terms plus lambda times the mean squared distance of
    # that norm from 1, together with the generator's loss.
    batch_size = x_real.shape[0]
    z = torch.randn(batch_size, g.dim_z, device=device)
    x_fake = g(z)
    d_real = d(x_real)
    d_fake = d(x_fake)

    alpha = torch.rand(batch_size, 1, 1, 1, device=device)
    x_r = alpha * x_fake + (1 - alpha) * x_real           # (B, 1, 28, 28)
    d_r = d(x_r)
    (grad,) = torch.autograd.grad(d_r.sum(), x_r, create_graph=True)
    grad_norm = grad.reshape(batch_size, -1).norm(dim=1)  # (B,)
    penalty = ((grad_norm - 1) ** 2).mean()

    d_loss = d_fake.mean() - d_real.mean() + 10 * penalty
    g_loss = -d_fake.mean()
    # END SOLUTION
    return d_loss, g_loss

"""Catalogue of student answers for the ``gan`` assignment, correct and wrong.

Each variant replaces one function of the reference ``codebase/gan.py``.
``d`` and ``g`` say whether the hidden d_loss / g_loss value tests must pass,
``unstable`` names the losses (``"d"``, ``"g"``) that are right at moderate
logits but not finite at extreme ones (they lose only their stability test;
a loss that fails its value test fails its stability test too), and ``says``
is a phrase every failure message must contain (the likely mistake, or the fix).
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    name: str
    function: str
    source: str           # the whole function definition
    d: bool               # hidden d_loss test passes
    g: bool               # hidden g_loss test passes
    says: str = ""        # substring of the failure message(s)
    unstable: str = ""    # losses right at moderate logits but not finite at +-200: "d", "g" or "dg"


NS = "loss_nonsaturating"
MM = "loss_minimax"
CN = "conditional_loss_nonsaturating"
WG = "loss_wasserstein_gp"

VARIANTS = [
    # ------------------------------------------------------------ non-saturating, correct
    Variant("bce_with_logits", NS, '''
def loss_nonsaturating(g, d, x_real, *, device):
    batch_size = x_real.shape[0]
    z = torch.randn(batch_size, g.dim_z, device=device)
    x_fake = g(z)
    ones = torch.ones(batch_size, device=device)
    zeros = torch.zeros(batch_size, device=device)
    d_loss = F.binary_cross_entropy_with_logits(d(x_real), ones) + \\
        F.binary_cross_entropy_with_logits(d(x_fake.detach()), zeros)
    g_loss = F.binary_cross_entropy_with_logits(d(x_fake), ones)
    return d_loss, g_loss
''', True, True),
    Variant("softplus_two_draws", NS, '''
def loss_nonsaturating(g, d, x_real, *, device):
    n = x_real.size(0)
    x_fake = g(torch.randn((n, g.dim_z)).to(device))
    d_loss = F.softplus(-d(x_real)).mean() + F.softplus(d(x_fake.detach())).mean()
    x_fake2 = g(torch.randn(n, g.dim_z, device=device))   # a fresh z for the generator step
    g_loss = F.softplus(-d(x_fake2)).mean()
    return d_loss, g_loss
''', True, True),
    Variant("log_sigmoid_probabilities", NS, '''
def loss_nonsaturating(g, d, x_real, *, device):
    z = torch.randn(x_real.shape[0], g.dim_z, device=device)
    p_real = torch.sigmoid(d(x_real))
    p_fake = torch.sigmoid(d(g(z)))
    d_loss = -(torch.log(p_real).mean() + torch.log(1 - p_fake).mean())
    g_loss = -torch.log(p_fake).mean()
    return d_loss, g_loss
''', True, True, "F.logsigmoid(h) and F.logsigmoid(-h) (or F.softplus, or F.binary_cross_entropy_with_logits)", unstable="d"),   # the stability policy: loses its stability point only
    Variant("log1p_of_minus_sigmoid", NS, '''
def loss_nonsaturating(g, d, x_real, *, device):
    z = torch.randn(x_real.shape[0], g.dim_z, device=device)
    h_real, h_fake = d(x_real), d(g(z))
    d_loss = -torch.log(torch.sigmoid(h_real)).mean() - torch.log1p(-torch.sigmoid(h_fake)).mean()
    g_loss = -F.logsigmoid(h_fake).mean()
    return d_loss, g_loss
''', True, True, "not finite when the discriminator's logits reach about +-200", unstable="d"),
    Variant("bce_on_probabilities", NS, '''
def loss_nonsaturating(g, d, x_real, *, device):
    B = len(x_real)
    x_fake = g(torch.randn(B, g.dim_z, device=device))
    bce = torch.nn.BCELoss()
    d_loss = bce(torch.sigmoid(d(x_real)), torch.ones(B)) + bce(torch.sigmoid(d(x_fake)), torch.zeros(B))
    g_loss = bce(torch.sigmoid(d(x_fake)), torch.ones(B))
    return d_loss, g_loss
''', True, True),
    # ------------------------------------------------------------ non-saturating, wrong
    Variant("minimax_as_nonsaturating", NS, '''
def loss_nonsaturating(g, d, x_real, *, device):
    z = torch.randn(x_real.shape[0], g.dim_z, device=device)
    d_real, d_fake = d(x_real), d(g(z))
    d_loss = -F.logsigmoid(d_real).mean() - F.logsigmoid(-d_fake).mean()
    g_loss = F.logsigmoid(-d_fake).mean()
    return d_loss, g_loss
''', True, False, "equals the minimax loss"),
    Variant("d_sign_flipped", NS, '''
def loss_nonsaturating(g, d, x_real, *, device):
    z = torch.randn(x_real.shape[0], g.dim_z, device=device)
    d_real, d_fake = d(x_real), d(g(z))
    d_loss = F.logsigmoid(d_real).mean() + F.logsigmoid(-d_fake).mean()
    g_loss = -F.logsigmoid(d_fake).mean()
    return d_loss, g_loss
''', False, True, "sign is flipped"),
    Variant("sum_instead_of_mean", NS, '''
def loss_nonsaturating(g, d, x_real, *, device):
    z = torch.randn(x_real.shape[0], g.dim_z, device=device)
    d_real, d_fake = d(x_real), d(g(z))
    d_loss = -F.logsigmoid(d_real).sum() - F.logsigmoid(-d_fake).sum()
    g_loss = -F.logsigmoid(d_fake).sum()
    return d_loss, g_loss
''', False, False, "sums over the batch"),
    Variant("generator_gets_no_gradient", NS, '''
def loss_nonsaturating(g, d, x_real, *, device):
    z = torch.randn(x_real.shape[0], g.dim_z, device=device)
    x_fake = g(z).detach()
    d_real, d_fake = d(x_real), d(x_fake)
    d_loss = -F.logsigmoid(d_real).mean() - F.logsigmoid(-d_fake).mean()
    g_loss = -F.logsigmoid(d_fake).mean()
    return d_loss, g_loss
''', True, False, "no gradient to the generator"),
    Variant("half_concatenated_bce", NS, '''
def loss_nonsaturating(g, d, x_real, *, device):
    B = x_real.shape[0]
    x_fake = g(torch.randn(B, g.dim_z, device=device))
    logits = d(torch.cat([x_real, x_fake.detach()]))
    labels = torch.cat([torch.ones(B), torch.zeros(B)])
    d_loss = F.binary_cross_entropy_with_logits(logits, labels)
    g_loss = -F.logsigmoid(d(x_fake)).mean()
    return d_loss, g_loss
''', False, True, "half the expected value"),
    Variant("uniform_z", NS, '''
def loss_nonsaturating(g, d, x_real, *, device):
    z = torch.rand(x_real.shape[0], g.dim_z, device=device)
    d_real, d_fake = d(x_real), d(g(z))
    d_loss = -F.logsigmoid(d_real).mean() - F.logsigmoid(-d_fake).mean()
    g_loss = -F.logsigmoid(d_fake).mean()
    return d_loss, g_loss
''', False, False, "torch.randn, not torch.rand"),
    # ------------------------------------------------------------ minimax
    Variant("minimax_log_one_minus_sigmoid", MM, '''
def loss_minimax(g, d, x_real, *, device):
    z = torch.randn(x_real.shape[0], g.dim_z, device=device)
    d_real, d_fake = d(x_real), d(g(z))
    d_loss = -torch.log(torch.sigmoid(d_real)).mean() - torch.log(1 - torch.sigmoid(d_fake)).mean()
    g_loss = -F.softplus(d_fake).mean()
    return d_loss, g_loss
''', True, True, "not finite when the discriminator's logits reach about +-200", unstable="d"),
    Variant("minimax_bce_with_logits", MM, '''
def loss_minimax(g, d, x_real, *, device):
    z = torch.randn(x_real.shape[0], g.dim_z, device=device)
    d_real, d_fake = d(x_real), d(g(z))
    bce = F.binary_cross_entropy_with_logits
    d_loss = bce(d_real, torch.ones_like(d_real)) + bce(d_fake, torch.zeros_like(d_fake))
    g_loss = -bce(d_fake, torch.zeros_like(d_fake))      # E[log(1 - D(G(z)))]
    return d_loss, g_loss
''', True, True),
    Variant("nonsaturating_as_minimax", MM, '''
def loss_minimax(g, d, x_real, *, device):
    z = torch.randn(x_real.shape[0], g.dim_z, device=device)
    d_real, d_fake = d(x_real), d(g(z))
    d_loss = -F.logsigmoid(d_real).mean() - F.logsigmoid(-d_fake).mean()
    g_loss = -F.logsigmoid(d_fake).mean()
    return d_loss, g_loss
''', True, False, "equals the non-saturating loss"),
    Variant("minimax_labels_swapped", MM, '''
def loss_minimax(g, d, x_real, *, device):
    z = torch.randn(x_real.shape[0], g.dim_z, device=device)
    d_real, d_fake = d(x_real), d(g(z))
    d_loss = -F.logsigmoid(-d_real).mean() - F.logsigmoid(d_fake).mean()
    g_loss = F.logsigmoid(-d_fake).mean()
    return d_loss, g_loss
''', False, True, "labels are swapped"),
    # ------------------------------------------------------------ conditional
    Variant("conditional_bce_detached", CN, '''
def conditional_loss_nonsaturating(g, d, x_real, y_real, *, device):
    B = x_real.shape[0]
    x_fake = g(torch.randn(B, g.dim_z, device=device), y_real)
    ones, zeros = torch.ones(B, device=device), torch.zeros(B, device=device)
    d_loss = F.binary_cross_entropy_with_logits(d(x_real, y_real), ones) + \\
        F.binary_cross_entropy_with_logits(d(x_fake.detach(), y_real), zeros)
    g_loss = F.binary_cross_entropy_with_logits(d(x_fake, y_real), ones)
    return d_loss, g_loss
''', True, True),
    Variant("conditional_wrong_fake_labels", CN, '''
def conditional_loss_nonsaturating(g, d, x_real, y_real, *, device):
    B = x_real.shape[0]
    x_fake = g(torch.randn(B, g.dim_z, device=device), y_real)
    y_wrong = (y_real + 1) % 10
    d_real, d_fake = d(x_real, y_real), d(x_fake, y_wrong)
    d_loss = -F.logsigmoid(d_real).mean() - F.logsigmoid(-d_fake).mean()
    g_loss = -F.logsigmoid(d_fake).mean()
    return d_loss, g_loss
''', False, False, "labels other than y_real"),
    Variant("conditional_minimax_generator", CN, '''
def conditional_loss_nonsaturating(g, d, x_real, y_real, *, device):
    z = torch.randn(x_real.shape[0], g.dim_z, device=device)
    d_real, d_fake = d(x_real, y_real), d(g(z, y_real), y_real)
    d_loss = -F.logsigmoid(d_real).mean() - F.logsigmoid(-d_fake).mean()
    g_loss = F.logsigmoid(-d_fake).mean()
    return d_loss, g_loss
''', True, False, "equals the minimax loss"),
    # ------------------------------------------------------------ WGAN-GP, correct
    Variant("wgan_other_side_alpha_flat", WG, '''
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
''', True, True),
    Variant("wgan_second_z_for_generator", WG, '''
def loss_wasserstein_gp(g, d, x_real, *, device):
    B = x_real.shape[0]
    x_fake = g(torch.randn(B, g.dim_z, device=device)).detach()
    eps = torch.rand(B, 1, 1, 1, device=device).expand_as(x_real)
    x_r = x_real + eps * (x_fake - x_real)
    x_r.requires_grad_()
    (grad,) = torch.autograd.grad(d(x_r).sum(), x_r, create_graph=True)
    penalty = ((grad.view(B, -1).norm(2, dim=1) - 1) ** 2).mean()
    d_loss = d(x_fake).mean() - d(x_real).mean() + 10 * penalty
    g_loss = -d(g(torch.randn(B, g.dim_z, device=device))).mean()
    return d_loss, g_loss
''', True, True),
    Variant("wgan_one_concatenated_critic_call", WG, '''
def loss_wasserstein_gp(g, d, x_real, *, device):
    B = x_real.shape[0]
    x_fake = g(torch.randn(B, g.dim_z, device=device))
    alpha = torch.rand(B, 1, 1, 1, device=device)
    x_hat = alpha * x_fake + (1 - alpha) * x_real
    scores = d(torch.cat([x_real, x_fake, x_hat]))
    s_real, s_fake, s_hat = scores[:B], scores[B:2 * B], scores[2 * B:]
    grad = torch.autograd.grad(s_hat.sum(), x_hat, create_graph=True)[0]
    gp = torch.mean((torch.sqrt(torch.sum(grad ** 2, dim=(1, 2, 3))) - 1) ** 2)
    return s_fake.mean() - s_real.mean() + 10 * gp, -s_fake.mean()
''', True, True),
    # ------------------------------------------------------------ WGAN-GP, wrong
    Variant("wgan_no_create_graph", WG, '''
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
''', False, True, "create_graph=True"),
    Variant("wgan_penalty_at_real_points", WG, '''
def loss_wasserstein_gp(g, d, x_real, *, device):
    B = x_real.shape[0]
    x_fake = g(torch.randn(B, g.dim_z, device=device))
    x_r = x_real.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(d(x_r).sum(), x_r, create_graph=True)
    penalty = ((grad.reshape(B, -1).norm(dim=1) - 1) ** 2).mean()
    d_loss = d(x_fake).mean() - d(x_real).mean() + 10 * penalty
    g_loss = -d(x_fake).mean()
    return d_loss, g_loss
''', False, True, "real or fake images"),
    Variant("wgan_per_pixel_alpha", WG, '''
def loss_wasserstein_gp(g, d, x_real, *, device):
    B = x_real.shape[0]
    x_fake = g(torch.randn(B, g.dim_z, device=device))
    alpha = torch.rand_like(x_real)
    x_r = alpha * x_fake + (1 - alpha) * x_real
    (grad,) = torch.autograd.grad(d(x_r).sum(), x_r, create_graph=True)
    penalty = ((grad.reshape(B, -1).norm(dim=1) - 1) ** 2).mean()
    d_loss = d(x_fake).mean() - d(x_real).mean() + 10 * penalty
    g_loss = -d(x_fake).mean()
    return d_loss, g_loss
''', False, True, "differ from pixel to pixel"),
    Variant("wgan_squared_norm", WG, '''
def loss_wasserstein_gp(g, d, x_real, *, device):
    B = x_real.shape[0]
    x_fake = g(torch.randn(B, g.dim_z, device=device))
    alpha = torch.rand(B, 1, 1, 1, device=device)
    x_r = alpha * x_fake + (1 - alpha) * x_real
    (grad,) = torch.autograd.grad(d(x_r).sum(), x_r, create_graph=True)
    penalty = ((grad.reshape(B, -1).pow(2).sum(dim=1) - 1) ** 2).mean()
    d_loss = d(x_fake).mean() - d(x_real).mean() + 10 * penalty
    g_loss = -d(x_fake).mean()
    return d_loss, g_loss
''', False, True, "squared norm"),
    Variant("wgan_batch_wide_norm", WG, '''
def loss_wasserstein_gp(g, d, x_real, *, device):
    B = x_real.shape[0]
    x_fake = g(torch.randn(B, g.dim_z, device=device))
    alpha = torch.rand(B, 1, 1, 1, device=device)
    x_r = alpha * x_fake + (1 - alpha) * x_real
    (grad,) = torch.autograd.grad(d(x_r).sum(), x_r, create_graph=True)
    penalty = (grad.norm() - 1) ** 2
    d_loss = d(x_fake).mean() - d(x_real).mean() + 10 * penalty
    g_loss = -d(x_fake).mean()
    return d_loss, g_loss
''', False, True, "whole batch"),
    Variant("wgan_lambda_one", WG, '''
def loss_wasserstein_gp(g, d, x_real, *, device):
    B = x_real.shape[0]
    x_fake = g(torch.randn(B, g.dim_z, device=device))
    alpha = torch.rand(B, 1, 1, 1, device=device)
    x_r = alpha * x_fake + (1 - alpha) * x_real
    (grad,) = torch.autograd.grad(d(x_r).sum(), x_r, create_graph=True)
    penalty = ((grad.reshape(B, -1).norm(dim=1) - 1) ** 2).mean()
    d_loss = d(x_fake).mean() - d(x_real).mean() + 1 * penalty
    g_loss = -d(x_fake).mean()
    return d_loss, g_loss
''', False, True, "weight lambda is 1;"),
    Variant("wgan_sigmoid_on_critic", WG, '''
def loss_wasserstein_gp(g, d, x_real, *, device):
    B = x_real.shape[0]
    x_fake = g(torch.randn(B, g.dim_z, device=device))
    alpha = torch.rand(B, 1, 1, 1, device=device)
    x_r = alpha * x_fake + (1 - alpha) * x_real
    critic = lambda x: torch.sigmoid(d(x))
    (grad,) = torch.autograd.grad(critic(x_r).sum(), x_r, create_graph=True)
    penalty = ((grad.reshape(B, -1).norm(dim=1) - 1) ** 2).mean()
    d_loss = critic(x_fake).mean() - critic(x_real).mean() + 10 * penalty
    g_loss = -critic(x_fake).mean()
    return d_loss, g_loss
''', False, False, "sigmoid"),
    Variant("wgan_generator_sign_flipped", WG, '''
def loss_wasserstein_gp(g, d, x_real, *, device):
    B = x_real.shape[0]
    x_fake = g(torch.randn(B, g.dim_z, device=device))
    alpha = torch.rand(B, 1, 1, 1, device=device)
    x_r = alpha * x_fake + (1 - alpha) * x_real
    (grad,) = torch.autograd.grad(d(x_r).sum(), x_r, create_graph=True)
    penalty = ((grad.reshape(B, -1).norm(dim=1) - 1) ** 2).mean()
    d_loss = d(x_fake).mean() - d(x_real).mean() + 10 * penalty
    g_loss = d(x_fake).mean()
    return d_loss, g_loss
''', True, False, "sign is flipped"),
    # ------------------------------------------------------------ where the draws come from (issue 18)
    Variant("torch_normal_z", NS, '''
def loss_nonsaturating(g, d, x_real, *, device):
    B = x_real.shape[0]
    z = torch.normal(0.0, 1.0, size=(B, g.dim_z), device=device)
    h_real, h_fake = d(x_real), d(g(z))
    d_loss = F.softplus(-h_real).mean() + F.softplus(h_fake).mean()
    return d_loss, F.softplus(-h_fake).mean()
''', True, True),
    Variant("symmetric_uniform_z", NS, '''
def loss_nonsaturating(g, d, x_real, *, device):
    z = 2 * torch.rand(x_real.shape[0], g.dim_z, device=device) - 1     # U[-1, 1], not N(0, I)
    d_real, d_fake = d(x_real), d(g(z))
    d_loss = -F.logsigmoid(d_real).mean() - F.logsigmoid(-d_fake).mean()
    g_loss = -F.logsigmoid(d_fake).mean()
    return d_loss, g_loss
''', False, False, "torch.randn, not torch.rand"),
    Variant("one_z_for_the_batch", NS, '''
def loss_nonsaturating(g, d, x_real, *, device):
    z = torch.randn(1, g.dim_z, device=device).expand(x_real.shape[0], -1)
    d_real, d_fake = d(x_real), d(g(z))
    d_loss = -F.logsigmoid(d_real).mean() - F.logsigmoid(-d_fake).mean()
    g_loss = -F.logsigmoid(d_fake).mean()
    return d_loss, g_loss
''', False, False, "the same z for every example"),
    Variant("z_is_the_prior_mean", MM, '''
def loss_minimax(g, d, x_real, *, device):
    z = torch.zeros(x_real.shape[0], g.dim_z, device=device)
    d_real, d_fake = d(x_real), d(g(z))
    d_loss = -F.logsigmoid(d_real).mean() - F.logsigmoid(-d_fake).mean()
    g_loss = F.logsigmoid(-d_fake).mean()
    return d_loss, g_loss
''', False, False, "z is all zeros"),
    Variant("minimax_uniform_z", MM, '''
def loss_minimax(g, d, x_real, *, device):
    z = torch.rand(x_real.shape[0], g.dim_z, device=device)
    d_real, d_fake = d(x_real), d(g(z))
    d_loss = -F.logsigmoid(d_real).mean() - F.logsigmoid(-d_fake).mean()
    g_loss = F.logsigmoid(-d_fake).mean()
    return d_loss, g_loss
''', False, False, "torch.randn, not torch.rand"),
    Variant("conditional_one_z_for_the_batch", CN, '''
def conditional_loss_nonsaturating(g, d, x_real, y_real, *, device):
    z = torch.randn(g.dim_z, device=device).repeat(x_real.shape[0], 1)
    x_fake = g(z, y_real)
    d_loss = -F.logsigmoid(d(x_real, y_real)).mean() - F.logsigmoid(-d(x_fake, y_real)).mean()
    g_loss = -F.logsigmoid(d(x_fake, y_real)).mean()
    return d_loss, g_loss
''', False, False, "the same z for every example"),
    Variant("wgan_alpha_from_randn", WG, '''
def loss_wasserstein_gp(g, d, x_real, *, device):
    B = x_real.shape[0]
    x_fake = g(torch.randn(B, g.dim_z, device=device))
    alpha = torch.randn(B, 1, 1, 1, device=device)
    x_r = alpha * x_fake + (1 - alpha) * x_real
    (grad,) = torch.autograd.grad(d(x_r).sum(), x_r, create_graph=True)
    penalty = ((grad.reshape(B, -1).norm(dim=1) - 1) ** 2).mean()
    d_loss = d(x_fake).mean() - d(x_real).mean() + 10 * penalty
    g_loss = -d(x_fake).mean()
    return d_loss, g_loss
''', False, True, "with torch.rand"),
    Variant("wgan_alpha_one_half", WG, '''
def loss_wasserstein_gp(g, d, x_real, *, device):
    B = x_real.shape[0]
    x_fake = g(torch.randn(B, g.dim_z, device=device))
    x_r = 0.5 * x_fake + 0.5 * x_real
    (grad,) = torch.autograd.grad(d(x_r).sum(), x_r, create_graph=True)
    penalty = ((grad.reshape(B, -1).norm(dim=1) - 1) ** 2).mean()
    d_loss = d(x_fake).mean() - d(x_real).mean() + 10 * penalty
    g_loss = -d(x_fake).mean()
    return d_loss, g_loss
''', False, True, "alpha is fixed at 0.5"),
    Variant("wgan_one_alpha_for_the_batch", WG, '''
def loss_wasserstein_gp(g, d, x_real, *, device):
    B = x_real.shape[0]
    x_fake = g(torch.randn(B, g.dim_z, device=device))
    alpha = torch.rand(1, device=device)
    x_r = alpha * x_fake + (1 - alpha) * x_real
    (grad,) = torch.autograd.grad(d(x_r).sum(), x_r, create_graph=True)
    penalty = ((grad.reshape(B, -1).norm(dim=1) - 1) ** 2).mean()
    d_loss = d(x_fake).mean() - d(x_real).mean() + 10 * penalty
    g_loss = -d(x_fake).mean()
    return d_loss, g_loss
''', False, True, "one alpha for the whole batch"),
    Variant("wgan_uniform_z", WG, '''
def loss_wasserstein_gp(g, d, x_real, *, device):
    B = x_real.shape[0]
    x_fake = g(torch.rand(B, g.dim_z, device=device))
    alpha = torch.rand(B, 1, 1, 1, device=device)
    x_r = alpha * x_fake + (1 - alpha) * x_real
    (grad,) = torch.autograd.grad(d(x_r).sum(), x_r, create_graph=True)
    penalty = ((grad.reshape(B, -1).norm(dim=1) - 1) ** 2).mean()
    d_loss = d(x_fake).mean() - d(x_real).mean() + 10 * penalty
    g_loss = -d(x_fake).mean()
    return d_loss, g_loss
''', False, False, "torch.randn, not torch.rand"),
    # ------------------------------------------------------------ styles and mistakes from real student code
    Variant("forward_calls", NS, '''
def loss_nonsaturating(g, d, x_real, *, device):
    z = torch.randn(x_real.shape[0], g.dim_z, device=device)
    x_fake = g.forward(z)
    d_loss = -F.logsigmoid(d.forward(x_real)).mean() - F.logsigmoid(-d.forward(x_fake.detach())).mean()
    g_loss = -F.logsigmoid(d.forward(x_fake)).mean()
    return d_loss, g_loss
''', True, True),
    Variant("forward_calls_labels_by_keyword", CN, '''
def conditional_loss_nonsaturating(g, d, x_real, y_real, *, device):
    z = torch.randn(x_real.shape[0], g.dim_z, device=device)
    x_fake = g.forward(z, y=y_real)
    d_loss = F.softplus(-d.forward(x_real, y=y_real)).mean() + F.softplus(d.forward(x_fake, y=y_real)).mean()
    g_loss = F.softplus(-d.forward(x_fake, y=y_real)).mean()
    return d_loss, g_loss
''', True, True),
    Variant("logsigmoid_of_one_minus_logit", NS, '''
def loss_nonsaturating(g, d, x_real, *, device):
    z = torch.randn(x_real.shape[0], g.dim_z, device=device)
    h_real, h_fake = d(x_real), d(g(z))
    d_loss = -F.logsigmoid(h_real).mean() - F.logsigmoid(1 - h_fake).mean()
    g_loss = -F.logsigmoid(h_fake).mean()
    return d_loss, g_loss
''', False, True, "fake-sample term of d_loss is a different function of the logit h: yours is -E[logsigmoid(1 - h)]"),
    Variant("generator_pushes_fakes_down", MM, '''
def loss_minimax(g, d, x_real, *, device):
    z = torch.randn(x_real.shape[0], g.dim_z, device=device)
    h_real, h_fake = d(x_real), d(g(z))
    d_loss = -F.logsigmoid(h_real).mean() - F.logsigmoid(-h_fake).mean()
    g_loss = -torch.log(1 - torch.sigmoid(h_fake)).mean()
    return d_loss, g_loss
''', True, False, "generator term of g_loss"),
    Variant("wgan_per_pixel_norm", WG, '''
def loss_wasserstein_gp(g, d, x_real, *, device):
    B = x_real.shape[0]
    x_fake = g(torch.randn(B, g.dim_z, device=device))
    alpha = torch.rand(B, 1, 1, 1, device=device)
    x_hat = (alpha * x_fake.detach() + (1 - alpha) * x_real).requires_grad_(True)
    grad = torch.autograd.grad(d(x_hat).sum(), x_hat, create_graph=True)[0]
    gp = ((grad.norm(2, dim=1) - 1) ** 2).mean()
    d_loss = d(x_fake.detach()).mean() - d(x_real).mean() + 10 * gp
    g_loss = -d(x_fake).mean()
    return d_loss, g_loss
''', False, True, "the penalty takes the norm per pixel"),
]



def apply(reference_source: str, batch: list[Variant]) -> str:
    """The reference gan.py with each variant's function replacing the original definition."""
    src = reference_source
    for v in batch:
        start = src.index(f"\ndef {v.function}(")
        nxt = src.find("\ndef ", start + 1)
        end = len(src) if nxt == -1 else nxt
        src = src[:start] + "\n" + v.source.strip("\n") + "\n\n" + src[end:]
    return src


# The current course version (gan_split) asks for each loss of a pair in a function of its own. A variant of
# a pair becomes two such functions returning its d_loss and its g_loss: each is graded as the pair's loss is.
SPLIT_OF = {NS: ("loss_nonsaturating_d", "loss_nonsaturating_g"),
            CN: ("conditional_loss_nonsaturating_d", "conditional_loss_nonsaturating_g"),
            WG: ("loss_wasserstein_gp_d", "loss_wasserstein_gp_g")}
SPLIT_VARIANTS = [v for v in VARIANTS if v.function in SPLIT_OF]


def apply_split(split_source: str, batch: list[Variant]) -> str:
    """The split reference gan.py with each variant's pair function and two functions taking its losses."""
    src = split_source
    for v in batch:
        args = "g, d, x_real, y_real" if v.function == CN else "g, d, x_real"
        src += "\n\n" + v.source.strip("\n") + "\n"
        for i, name in enumerate(SPLIT_OF[v.function]):
            src += (f"\n\ndef {name}({args}, *, device):\n"
                    f"    return {v.function}({args}, device=device)[{i}]\n")
    return src

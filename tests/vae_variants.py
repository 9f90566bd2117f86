"""Catalogue of student answers for the ``vae`` notebook, correct and wrong.

Each variant replaces one function of the reference notebook; ``passes`` lists
the checks of that function's tests that must pass (the others must fail), and
``says`` is a phrase the failure messages must contain.
"""
from catalogue import V

KL = {"vae.kl_props", "vae.kl_values"}
WAKE = {"vae.wake_props", "vae.wake_values", "vae.wake_finite", "vae.wake_stable"}
SLEEP = {"vae.sleep_props", "vae.sleep_values"}
IWAE = {"vae.iwae_props", "vae.iwae_values", "vae.iwae_finite", "vae.iwae_stable"}
STABLE = {"vae.wake_finite", "vae.wake_stable", "vae.iwae_finite", "vae.iwae_stable"}
TRAIN = {"vae.train_structure"}

# The usual mistakes in where the draws come from (issue 18). The probe's encoder has log sigma^2 near -3 and
# means away from 0, its decoder pixel probabilities from about 0.05 to 0.95, so sigma, sigma^2, log sigma^2
# and 1 differ by 4x or more, a prior draw is not a posterior one, and samples, modes and means of a
# Bernoulli differ. Each costs its whole part: the value test replays the student's draws into the
# reference, so it first requires the draws to be right.
WAKE_DRAW_WRONG = {"vae.wake_finite"}
IWAE_DRAW_WRONG = {"vae.iwae_finite"}
VARIANCE = "the variance is used where the standard deviation belongs"
LOGVAR = "the log-variance is used as the standard deviation"
RAND = "torch.rand draws U[0, 1)"


VARIANTS = [
    # ------------------------------------------------------------ gaussian_kl
    V("kl_torch_distributions", "gaussian_kl", '''
def gaussian_kl(mu, logvar):
    from torch.distributions import Normal, kl_divergence
    q = Normal(mu, (0.5 * logvar).exp())
    return kl_divergence(q, Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(-1)
''', KL),
    V("kl_std_internals", "gaussian_kl", '''
def gaussian_kl(mu, logvar):
    sigma = torch.exp(0.5 * logvar)
    return 0.5 * torch.sum(sigma ** 2 + mu ** 2 - 1 - 2 * torch.log(sigma), dim=1)
''', KL),
    V("kl_missing_half", "gaussian_kl", '''
def gaussian_kl(mu, logvar):
    return (logvar.exp() + mu ** 2 - 1 - logvar).sum(dim=1)
''', {"vae.kl_props"}, "1/2 is missing"),
    V("kl_log_sigma_for_log_var", "gaussian_kl", '''
def gaussian_kl(mu, logvar):
    return 0.5 * ((2 * logvar).exp() + mu ** 2 - 1 - 2 * logvar).sum(dim=1)
''', {"vae.kl_props"}, "log sigma"),
    V("kl_mean_over_latent", "gaussian_kl", '''
def gaussian_kl(mu, logvar):
    return 0.5 * (logvar.exp() + mu ** 2 - 1 - logvar).mean(dim=1)
''', {"vae.kl_props"}, "averages over the latent"),
    V("kl_batch_mean", "gaussian_kl", '''
def gaussian_kl(mu, logvar):
    return 0.5 * (logvar.exp() + mu ** 2 - 1 - logvar).sum(dim=1).mean()
''', set(), "one KL per example"),
    # ------------------------------------------------------------ wake_loss
    V("wake_distributions_with_prior", "wake_loss", '''
def wake_loss(model, x):
    from torch.distributions import Normal
    mu, logvar = model.encode(x)
    z = Normal(mu, torch.exp(0.5 * logvar)).sample()
    log_px_z = -F.binary_cross_entropy_with_logits(model.decode(z), x, reduction="none").sum(1)
    log_pz = Normal(0.0, 1.0).log_prob(z).sum(1)
    return -(log_px_z + log_pz).mean()
''', WAKE),
    V("wake_trains_encoder", "wake_loss", '''
def wake_loss(model, x):
    mu, logvar = model.encode(x)
    z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
    return -log_bernoulli(x, model.decode(z)).mean()
''', {"vae.wake_finite"}, "encoder"),
    V("wake_no_sampling", "wake_loss", '''
def wake_loss(model, x):
    mu, _ = model.encode(x)
    return -log_bernoulli(x, model.decode(mu.detach())).mean()
''', {"vae.wake_finite"}, "mean itself"),
    V("wake_log_of_sigmoid", "wake_loss", '''
def wake_loss(model, x):
    mu, logvar = model.encode(x)
    z = (mu + (0.5 * logvar).exp() * torch.randn_like(mu)).detach()
    p = torch.sigmoid(model.decode(z))
    log_px_z = (x * torch.log(p) + (1 - x) * torch.log(1 - p)).sum(1)
    return -log_px_z.mean()
''', WAKE - STABLE, "F.binary_cross_entropy_with_logits"),   # right but unstable: loses the stability points only
    V("wake_mean_over_pixels", "wake_loss", '''
def wake_loss(model, x):
    mu, logvar = model.encode(x)
    z = (mu + (0.5 * logvar).exp() * torch.randn_like(mu)).detach()
    return F.binary_cross_entropy_with_logits(model.decode(z), x)
''', {"vae.wake_props", "vae.wake_finite"}, "averaged over pixels"),
    # ------------------------------------------------------------ sleep_loss
    V("sleep_distributions_no_constant", "sleep_loss", '''
def sleep_loss(model, num_samples):
    from torch.distributions import Bernoulli
    z = torch.randn(num_samples, model.latent_dim)
    x = Bernoulli(logits=model.decode(z)).sample()
    mu, logvar = model.encode(x)
    return (0.5 * (logvar + (z - mu) ** 2 / logvar.exp())).sum(1).mean()
''', SLEEP),
    V("sleep_trains_decoder", "sleep_loss", '''
def sleep_loss(model, num_samples):
    z = torch.randn(num_samples, model.latent_dim)
    x = torch.sigmoid(model.decode(z))
    mu, logvar = model.encode(x)
    return -log_normal(z, mu, logvar).mean()
''', set(), "decoder"),
    V("sleep_z_from_q", "sleep_loss", '''
def sleep_loss(model, num_samples):
    with torch.no_grad():
        x = torch.bernoulli(torch.sigmoid(model.decode(torch.randn(num_samples, model.latent_dim))))
    mu, logvar = model.encode(x)
    z = (mu + (0.5 * logvar).exp() * torch.randn_like(mu)).detach()
    return -log_normal(z, mu, logvar).mean()
''', {"vae.sleep_props"}, "decoded from"),
    # ------------------------------------------------------------ iwae_bound
    V("iwae_python_loop", "iwae_bound", '''
def iwae_bound(model, x, k):
    mu, logvar = model.encode(x)
    std = torch.exp(0.5 * logvar)
    log_ws = []
    for _ in range(k):
        z = mu + std * torch.randn_like(std)
        log_ws.append(log_bernoulli(x, model.decode(z)) + log_normal(z, torch.zeros_like(z), torch.zeros_like(z))
                      - log_normal(z, mu, logvar))
    return torch.logsumexp(torch.stack(log_ws), dim=0) - math.log(k)
''', IWAE),
    V("iwae_distributions_rsample", "iwae_bound", '''
def iwae_bound(model, x, k):
    from torch.distributions import Normal
    mu, logvar = model.encode(x)
    q = Normal(mu, torch.exp(0.5 * logvar))
    z = q.rsample((k,))
    log_w = (log_bernoulli(x, model.decode(z)) + Normal(0.0, 1.0).log_prob(z).sum(-1)
             - q.log_prob(z).sum(-1))
    return torch.logsumexp(log_w, 0) - torch.log(torch.tensor(float(k)))
''', IWAE),
    V("iwae_no_log_k", "iwae_bound", '''
def iwae_bound(model, x, k):
    mu, logvar = model.encode(x)
    z = mu + (0.5 * logvar).exp() * torch.randn(k, *mu.shape)
    zero = torch.zeros_like(z)
    log_w = log_bernoulli(x, model.decode(z)) + log_normal(z, zero, zero) - log_normal(z, mu, logvar)
    return torch.logsumexp(log_w, dim=0)
''', {"vae.iwae_finite"}, "log k"),
    V("iwae_mean_of_log_weights", "iwae_bound", '''
def iwae_bound(model, x, k):
    mu, logvar = model.encode(x)
    z = mu + (0.5 * logvar).exp() * torch.randn(k, *mu.shape)
    zero = torch.zeros_like(z)
    log_w = log_bernoulli(x, model.decode(z)) + log_normal(z, zero, zero) - log_normal(z, mu, logvar)
    return log_w.mean(0)
''', {"vae.iwae_props", "vae.iwae_finite"}, "ELBO"),
    V("iwae_naive_log_mean_exp", "iwae_bound", '''
def iwae_bound(model, x, k):
    mu, logvar = model.encode(x)
    z = mu + (0.5 * logvar).exp() * torch.randn(k, *mu.shape)
    zero = torch.zeros_like(z)
    log_w = log_bernoulli(x, model.decode(z)) + log_normal(z, zero, zero) - log_normal(z, mu, logvar)
    return torch.log(torch.exp(log_w).mean(0))
''', set(), "logsumexp"),
    V("iwae_missing_prior", "iwae_bound", '''
def iwae_bound(model, x, k):
    mu, logvar = model.encode(x)
    z = mu + (0.5 * logvar).exp() * torch.randn(k, *mu.shape)
    log_w = log_bernoulli(x, model.decode(z)) - log_normal(z, mu, logvar)
    return torch.logsumexp(log_w, dim=0) - math.log(k)
''', {"vae.iwae_finite"}, ""),
    V("iwae_one_noise_for_all_k", "iwae_bound", '''
def iwae_bound(model, x, k):
    mu, logvar = model.encode(x)
    eps = torch.randn(1, *mu.shape).expand(k, *mu.shape)
    z = mu + (0.5 * logvar).exp() * eps
    zero = torch.zeros_like(z)
    log_w = log_bernoulli(x, model.decode(z)) + log_normal(z, zero, zero) - log_normal(z, mu, logvar)
    return torch.logsumexp(log_w, dim=0) - math.log(k)
''', {"vae.iwae_finite"}, "identical"),
    # ------------------------------------------------------------ where the draws come from
    V("wake_normal_rsample_half_logvar", "wake_loss", '''
def wake_loss(model, x):
    from torch.distributions import Normal
    mu, logvar = model.encode(x)
    z = Normal(mu, logvar.mul(0.5).exp()).rsample().detach()
    return F.binary_cross_entropy_with_logits(model.decode(z), x, reduction="sum") / x.shape[0]
''', WAKE),
    V("wake_torch_normal_sqrt_exp", "wake_loss", '''
def wake_loss(model, x):
    with torch.no_grad():
        mu, logvar = model.encode(x)
        z = torch.normal(mu, torch.sqrt(torch.exp(logvar)))
    return -log_bernoulli(x, model.decode(z)).mean()
''', WAKE),
    V("wake_normal_with_variance", "wake_loss", '''
def wake_loss(model, x):
    from torch.distributions import Normal
    mu, logvar = model.encode(x)
    z = Normal(mu, logvar.exp()).sample()
    return -log_bernoulli(x, model.decode(z)).mean()
''', WAKE_DRAW_WRONG, VARIANCE),   # the real students' mistake: Normal takes sigma, not sigma^2
    V("wake_variance_for_std", "wake_loss", '''
def wake_loss(model, x):
    mu, logvar = model.encode(x)
    z = (mu + logvar.exp() * torch.randn_like(mu)).detach()
    return -log_bernoulli(x, model.decode(z)).mean()
''', WAKE_DRAW_WRONG, VARIANCE),
    V("wake_logvar_for_std", "wake_loss", '''
def wake_loss(model, x):
    mu, logvar = model.encode(x)
    z = (mu + logvar * torch.randn_like(mu)).detach()
    return -log_bernoulli(x, model.decode(z)).mean()
''', WAKE_DRAW_WRONG, LOGVAR),
    V("wake_log_sigma_for_std", "wake_loss", '''
def wake_loss(model, x):
    mu, logvar = model.encode(x)
    std = logvar.mul(0.5)             # exp() forgotten
    z = (mu + std * torch.randn_like(std)).detach()
    return -log_bernoulli(x, model.decode(z)).mean()
''', WAKE_DRAW_WRONG, "log sigma is used as the standard deviation"),
    V("wake_noise_not_scaled", "wake_loss", '''
def wake_loss(model, x):
    mu, _ = model.encode(x)
    z = (mu + torch.randn_like(mu)).detach()
    return -log_bernoulli(x, model.decode(z)).mean()
''', WAKE_DRAW_WRONG, "the noise is not scaled"),
    V("wake_z_from_prior", "wake_loss", '''
def wake_loss(model, x):
    z = torch.randn(x.shape[0], model.latent_dim)
    return -log_bernoulli(x, model.decode(z)).mean()
''', WAKE_DRAW_WRONG, "drawn from the prior N(0, I), not from q(z|x)"),
    V("wake_uniform_noise", "wake_loss", '''
def wake_loss(model, x):
    mu, logvar = model.encode(x)
    z = (mu + (0.5 * logvar).exp() * torch.rand_like(mu)).detach()
    return -log_bernoulli(x, model.decode(z)).mean()
''', WAKE_DRAW_WRONG, RAND),
    V("wake_one_noise_for_the_batch", "wake_loss", '''
def wake_loss(model, x):
    mu, logvar = model.encode(x)
    eps = torch.randn(1, model.latent_dim)
    z = (mu + (0.5 * logvar).exp() * eps).detach()
    return -log_bernoulli(x, model.decode(z)).mean()
''', WAKE_DRAW_WRONG, "the same noise for every example"),
    V("sleep_normal_log_prob_rand_below_p", "sleep_loss", '''
def sleep_loss(model, num_samples):
    from torch.distributions import Normal
    z = torch.randn(num_samples, model.latent_dim)
    with torch.no_grad():
        p = torch.sigmoid(model.decode(z))
        x = (torch.rand_like(p) < p).float()
    mu, logvar = model.encode(x)
    return -Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1).mean()
''', SLEEP),
    V("sleep_uniform_z", "sleep_loss", '''
def sleep_loss(model, num_samples):
    z = torch.rand(num_samples, model.latent_dim)
    with torch.no_grad():
        x = torch.bernoulli(torch.sigmoid(model.decode(z)))
    mu, logvar = model.encode(x)
    return -log_normal(z, mu, logvar).mean()
''', set(), RAND),
    V("sleep_z_is_the_prior_mean", "sleep_loss", '''
def sleep_loss(model, num_samples):
    z = torch.zeros(num_samples, model.latent_dim)
    with torch.no_grad():
        x = torch.bernoulli(torch.sigmoid(model.decode(z)))
    mu, logvar = model.encode(x)
    return -log_normal(z, mu, logvar).mean()
''', set(), "the prior's mean 0, not a draw"),
    V("sleep_one_z_for_all_dreams", "sleep_loss", '''
def sleep_loss(model, num_samples):
    z = torch.randn(1, model.latent_dim).expand(num_samples, -1)
    with torch.no_grad():
        x = torch.bernoulli(torch.sigmoid(model.decode(z)))
    mu, logvar = model.encode(x)
    return -log_normal(z, mu, logvar).mean()
''', set(), "the same z for every dream"),
    V("sleep_most_likely_pixels", "sleep_loss", '''
def sleep_loss(model, num_samples):
    z = torch.randn(num_samples, model.latent_dim)
    with torch.no_grad():
        x = (torch.sigmoid(model.decode(z)) > 0.5).float()
    mu, logvar = model.encode(x)
    return -log_normal(z, mu, logvar).mean()
''', set(), "the most likely pixels"),
    V("sleep_bernoulli_of_one_minus_p", "sleep_loss", '''
def sleep_loss(model, num_samples):
    z = torch.randn(num_samples, model.latent_dim)
    with torch.no_grad():
        p = torch.sigmoid(model.decode(z))
        x = (torch.rand_like(p) > p).float()
    mu, logvar = model.encode(x)
    return -log_normal(z, mu, logvar).mean()
''', set(), "not Bernoulli(sigmoid(decode(z))) samples"),
    V("iwae_example_major", "iwae_bound", '''
def iwae_bound(model, x, k):
    mu, logvar = model.encode(x)                                     # (B, J)
    std = torch.exp(0.5 * logvar)
    z = mu.unsqueeze(1) + std.unsqueeze(1) * torch.randn(x.shape[0], k, mu.shape[1])   # (B, k, J)
    zero = torch.zeros_like(z)
    log_w = (log_bernoulli(x.unsqueeze(1), model.decode(z)) + log_normal(z, zero, zero)
             - log_normal(z, mu.unsqueeze(1), logvar.unsqueeze(1)))                   # (B, k)
    return torch.logsumexp(log_w, dim=1) - math.log(k)
''', IWAE),
    V("iwae_normal_with_variance", "iwae_bound", '''
def iwae_bound(model, x, k):
    from torch.distributions import Normal
    mu, logvar = model.encode(x)
    z = Normal(mu, logvar.exp()).rsample((k,))
    zero = torch.zeros_like(z)
    log_w = log_bernoulli(x, model.decode(z)) + log_normal(z, zero, zero) - log_normal(z, mu, logvar)
    return torch.logsumexp(log_w, dim=0) - math.log(k)
''', IWAE_DRAW_WRONG, VARIANCE),
    V("iwae_logvar_for_std", "iwae_bound", '''
def iwae_bound(model, x, k):
    mu, logvar = model.encode(x)
    z = mu + logvar * torch.randn(k, *mu.shape)
    zero = torch.zeros_like(z)
    log_w = log_bernoulli(x, model.decode(z)) + log_normal(z, zero, zero) - log_normal(z, mu, logvar)
    return torch.logsumexp(log_w, dim=0) - math.log(k)
''', IWAE_DRAW_WRONG, LOGVAR),
    V("iwae_uniform_noise", "iwae_bound", '''
def iwae_bound(model, x, k):
    mu, logvar = model.encode(x)
    z = mu + (0.5 * logvar).exp() * torch.rand(k, *mu.shape)
    zero = torch.zeros_like(z)
    log_w = log_bernoulli(x, model.decode(z)) + log_normal(z, zero, zero) - log_normal(z, mu, logvar)
    return torch.logsumexp(log_w, dim=0) - math.log(k)
''', IWAE_DRAW_WRONG, RAND),
    V("iwae_one_noise_for_the_batch", "iwae_bound", '''
def iwae_bound(model, x, k):
    mu, logvar = model.encode(x)
    z = mu + (0.5 * logvar).exp() * torch.randn(k, 1, mu.shape[1])
    zero = torch.zeros_like(z)
    log_w = log_bernoulli(x, model.decode(z)) + log_normal(z, zero, zero) - log_normal(z, mu, logvar)
    return torch.logsumexp(log_w, dim=0) - math.log(k)
''', IWAE_DRAW_WRONG, "the same noise for every example"),
    V("iwae_the_mean_k_times", "iwae_bound", '''
def iwae_bound(model, x, k):
    mu, logvar = model.encode(x)
    z = mu.expand(k, *mu.shape)
    zero = torch.zeros_like(z)
    log_w = log_bernoulli(x, model.decode(z)) + log_normal(z, zero, zero) - log_normal(z, mu, logvar)
    return torch.logsumexp(log_w, dim=0) - math.log(k)
''', IWAE_DRAW_WRONG, "z is the mean itself"),
    # ------------------------------------------------------------ train_wake_sleep
    V("train_sgd_zero_grad_after", "train_wake_sleep", '''
def train_wake_sleep(model, loader, epochs, lr_wake=LR_WAKE, lr_sleep=LR_SLEEP, eval_fn=None):
    history = {"wake": [], "sleep": [], "eval": []}
    opt_w = torch.optim.SGD(model.decoder_parameters(), lr=lr_wake)
    opt_s = torch.optim.SGD(model.encoder_parameters(), lr=lr_sleep)
    for epoch in range(epochs):
        w, s = [], []
        for x, _ in loader:
            x = x.reshape(len(x), -1)
            loss = wake_loss(model, x)
            loss.backward()
            opt_w.step()
            opt_w.zero_grad()
            w.append(loss.item())
            loss = sleep_loss(model, x.shape[0])
            loss.backward()
            opt_s.step()
            opt_s.zero_grad()
            s.append(loss.item())
        history["wake"].append(sum(w) / len(w))
        history["sleep"].append(sum(s) / len(s))
    return history
''', TRAIN),
    V("train_one_optimizer", "train_wake_sleep", '''
def train_wake_sleep(model, loader, epochs, lr_wake=LR_WAKE, lr_sleep=LR_SLEEP, eval_fn=None):
    history = {"wake": [], "sleep": [], "eval": []}
    opt = torch.optim.Adam(model.parameters(), lr=lr_wake)
    for epoch in range(epochs):
        for x, _ in loader:
            x = x.view(-1, 784)
            opt.zero_grad()
            wake_loss(model, x).backward()
            opt.step()
            opt.zero_grad()
            sleep_loss(model, len(x)).backward()
            opt.step()
        history["wake"].append(0.0)
        history["sleep"].append(0.0)
    return history
''', set(), "one optimiser per phase"),
    V("train_forgets_sleep_step", "train_wake_sleep", '''
def train_wake_sleep(model, loader, epochs, lr_wake=LR_WAKE, lr_sleep=LR_SLEEP, eval_fn=None):
    history = {"wake": [], "sleep": [], "eval": []}
    opt_w = torch.optim.Adam(model.decoder_parameters(), lr=lr_wake)
    opt_s = torch.optim.Adam(model.encoder_parameters(), lr=lr_sleep)
    for epoch in range(epochs):
        for x, _ in loader:
            x = x.view(-1, 784)
            opt_w.zero_grad()
            wake_loss(model, x).backward()
            opt_w.step()
            opt_s.zero_grad()
            sleep_loss(model, len(x)).backward()
        history["wake"].append(0.0)
        history["sleep"].append(0.0)
    return history
''', set(), "sleep (encoder) step"),
    # ------------------------------------------------------------ no training, no KL
    V("kl_returns_zeros", "gaussian_kl", '''
def gaussian_kl(mu, logvar):
    return torch.zeros(mu.shape[0]) + 0 * (mu + logvar).sum(dim=1)
''', set(), "KL(q || p) > 0 unless q = p"),
    V("train_steps_with_learning_rate_zero", "train_wake_sleep", '''
def train_wake_sleep(model, loader, epochs, lr_wake=LR_WAKE, lr_sleep=LR_SLEEP, eval_fn=None):
    history = {"wake": [], "sleep": [], "eval": []}
    opt_w = torch.optim.Adam(model.decoder_parameters(), lr=0.0)
    opt_s = torch.optim.Adam(model.encoder_parameters(), lr=0.0)
    for epoch in range(epochs):
        for x, _ in loader:
            x = x.view(-1, 784)
            opt_w.zero_grad()
            wake_loss(model, x).backward()
            opt_w.step()
            opt_s.zero_grad()
            sleep_loss(model, len(x)).backward()
            opt_s.step()
        history["wake"].append(0.0)
        history["sleep"].append(0.0)
    return history
''', set(), "changed no parameter"),
]

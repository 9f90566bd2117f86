"""Catalogue of student answers for the ``gan1d`` notebook, correct and wrong.

Each variant replaces one function of the reference notebook. ``passes`` lists
the checks of that function's tests that must pass (all others must fail), and
``says`` is a phrase that every failure message of that function must contain.
"""
from catalogue import V

PROPERTIES = {"gan1d.directions", "gan1d.batch_means"}   # public: sign and batch mean, no reference value
ALL_D = {"gan1d.finite", "gan1d.values", "gan1d.stable"} | PROPERTIES
ALL_G = {"gan1d.finite", "gan1d.vanishing", "gan1d.values", "gan1d.stable"} | PROPERTIES
STABILITY_FIX = "F.binary_cross_entropy_with_logits"   # named by the stability test of a right, unstable loss
ALL_T = {"gan1d.train_structure", "gan1d.fit"}
FIT_OF_D_LOSS_IN_G = {"gan1d.fit"}   # measured: it still fits in 1000 steps




VARIANTS = [
    # ------------------------------------------------------------ discriminator_loss
    V("d_bce_with_logits", "discriminator_loss", '''
def discriminator_loss(d_real, d_fake):
    real = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
    fake = F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
    return real + fake
''', ALL_D),
    V("d_softplus", "discriminator_loss", '''
def discriminator_loss(d_real, d_fake):
    return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
''', ALL_D),
    V("d_naive_log_sigmoid", "discriminator_loss", '''
def discriminator_loss(d_real, d_fake):
    return -torch.log(torch.sigmoid(d_real)).mean() - torch.log(1 - torch.sigmoid(d_fake)).mean()
''', PROPERTIES | {"gan1d.values"}, STABILITY_FIX),   # right but unstable: loses the stability point only
    V("d_sign_flipped", "discriminator_loss", '''
def discriminator_loss(d_real, d_fake):
    return F.logsigmoid(d_real).mean() + F.logsigmoid(-d_fake).mean()
''', {"gan1d.finite", "gan1d.batch_means"}, "flipped"),
    V("d_summed_over_the_batch", "discriminator_loss", '''
def discriminator_loss(d_real, d_fake):
    return -(F.logsigmoid(d_real) + F.logsigmoid(-d_fake)).sum()
''', {"gan1d.finite", "gan1d.directions"}, ""),
    # ------------------------------------------------------------ generator_loss
    V("g_dict_of_losses", "generator_loss", '''
def generator_loss(d_fake, kind):
    losses = {
        "minimax": lambda h: -F.softplus(h).mean(),
        "nonsaturating": lambda h: F.binary_cross_entropy_with_logits(h, torch.ones_like(h)),
    }
    if kind not in losses:
        raise ValueError(kind)
    return losses[kind](d_fake)
''', ALL_G),
    V("g_kinds_swapped", "generator_loss", '''
def generator_loss(d_fake, kind):
    if kind == "nonsaturating":
        return F.logsigmoid(-d_fake).mean()
    if kind == "minimax":
        return -F.logsigmoid(d_fake).mean()
    raise ValueError(kind)
''', {"gan1d.finite"} | PROPERTIES, ""),
    V("g_sign_flipped", "generator_loss", '''
def generator_loss(d_fake, kind):
    if kind == "minimax":
        return -F.logsigmoid(-d_fake).mean()
    if kind == "nonsaturating":
        return F.logsigmoid(d_fake).mean()
    raise ValueError(kind)
''', {"gan1d.finite", "gan1d.vanishing", "gan1d.batch_means"}, ""),
    V("g_naive_logs", "generator_loss", '''
def generator_loss(d_fake, kind):
    p = torch.sigmoid(d_fake)
    if kind == "minimax":
        return torch.log(1 - p).mean()
    if kind == "nonsaturating":
        return -torch.log(p).mean()
    raise ValueError(kind)
''', PROPERTIES | {"gan1d.vanishing", "gan1d.values"}, STABILITY_FIX),   # right but unstable
    # ------------------------------------------------------------ train
    V("train_no_grad_fakes_single_draw", "train", '''
def train(G, D, steps, k=1, kind="nonsaturating", batch_size=256, lr=1e-3, callback=None):
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    history = {"d_loss": [], "g_loss": []}
    for step in range(steps):
        for _ in range(k):
            with torch.no_grad():
                x_fake = G(sample_noise(batch_size))
            d_loss = discriminator_loss(D(sample_data(batch_size)), D(x_fake))
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
        for p in D.parameters():
            p.requires_grad_(False)
        g_loss = generator_loss(D(G(sample_noise(batch_size))), kind)
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        for p in D.parameters():
            p.requires_grad_(True)
        history["d_loss"].append(float(d_loss))
        history["g_loss"].append(float(g_loss))
        if callback:
            callback(step, G, D)
    return history
''', ALL_T),
    V("train_not_detached_but_zeroed", "train", '''
def train(G, D, steps, k=1, kind="nonsaturating", batch_size=256, lr=1e-3, callback=None):
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    history = {"d_loss": [], "g_loss": []}
    for step in range(steps):
        for _ in range(k):
            x_fake = G(sample_noise(batch_size))          # not detached
            d_loss = discriminator_loss(D(sample_data(batch_size)), D(x_fake))
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
        g_loss = generator_loss(D(G(sample_noise(batch_size))), kind)
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        history["d_loss"].append(d_loss.item())
        history["g_loss"].append(g_loss.item())
    return history
''', ALL_T),   # the statement's aim holds: D's loss never changes G (its gradients are zeroed first)
    V("train_never_steps_g", "train", '''
def train(G, D, steps, k=1, kind="nonsaturating", batch_size=256, lr=1e-3, callback=None):
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    for step in range(steps):
        for _ in range(k):
            d_loss = discriminator_loss(D(sample_data(batch_size)), D(G(sample_noise(batch_size)).detach()))
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
        g_loss = generator_loss(D(G(sample_noise(batch_size))), kind)
        opt_g.zero_grad()
        g_loss.backward()
    return {"d_loss": [], "g_loss": []}
''', set(), ""),
    V("train_one_optimizer_for_both", "train", '''
def train(G, D, steps, k=1, kind="nonsaturating", batch_size=256, lr=1e-3, callback=None):
    opt = torch.optim.Adam(list(G.parameters()) + list(D.parameters()), lr=lr, betas=(0.5, 0.999))
    for step in range(steps):
        for _ in range(k):
            d_loss = discriminator_loss(D(sample_data(batch_size)), D(G(sample_noise(batch_size))))
            opt.zero_grad()
            d_loss.backward()
            opt.step()
        g_loss = generator_loss(D(G(sample_noise(batch_size))), kind)
        opt.zero_grad()
        g_loss.backward()
        opt.step()
    return {"d_loss": [], "g_loss": []}
''', set(), ""),
    V("train_ignores_k", "train", '''
def train(G, D, steps, k=1, kind="nonsaturating", batch_size=256, lr=1e-3, callback=None):
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    for step in range(steps):
        d_loss = discriminator_loss(D(sample_data(batch_size)), D(G(sample_noise(batch_size)).detach()))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = generator_loss(D(G(sample_noise(batch_size))), kind)
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
    return {"d_loss": [], "g_loss": []}
''', {"gan1d.fit"}, "k=3"),
    V("train_generator_ascends", "train", '''
def train(G, D, steps, k=1, kind="nonsaturating", batch_size=256, lr=1e-3, callback=None):
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    for step in range(steps):
        for _ in range(k):
            d_loss = discriminator_loss(D(sample_data(batch_size)), D(G(sample_noise(batch_size)).detach()))
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
        g_loss = -generator_loss(D(G(sample_noise(batch_size))), kind)
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
    return {"d_loss": [], "g_loss": []}
''', {"gan1d.train_structure"}, "Wasserstein-1"),
    V("train_d_loss_in_g_update", "train", '''
def train(G, D, steps, k=1, kind="nonsaturating", batch_size=256, lr=1e-3, callback=None):
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    for step in range(steps):
        opt_g.zero_grad()                                   # too early: D's loss reaches G's update
        for _ in range(k):
            x_fake = G(sample_noise(batch_size))
            d_loss = discriminator_loss(D(sample_data(batch_size)), D(x_fake))
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
        g_loss = generator_loss(D(G(sample_noise(batch_size))), kind)
        g_loss.backward()
        opt_g.step()
    return {"d_loss": [], "g_loss": []}
''', FIT_OF_D_LOSS_IN_G, "also used the gradient of the discriminator's loss"),
    V("train_learning_rate_zero", "train", '''
def train(G, D, steps, k=1, kind="nonsaturating", batch_size=256, lr=1e-3, callback=None):
    opt_g = torch.optim.Adam(G.parameters(), lr=0.0, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=0.0, betas=(0.5, 0.999))
    for step in range(steps):
        for _ in range(k):
            d_loss = discriminator_loss(D(sample_data(batch_size)), D(G(sample_noise(batch_size)).detach()))
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
        g_loss = generator_loss(D(G(sample_noise(batch_size))), kind)
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
    return {"d_loss": [], "g_loss": []}
''', set(), ""),   # messages: tests/test_gan1d.py::test_no_training_is_named
    V("train_constant_generator", "train", '''
def train(G, D, steps, k=1, kind="nonsaturating", batch_size=256, lr=1e-3, callback=None):
    with torch.no_grad():                                   # no training: G always outputs the target mean
        for p in G.parameters():
            p.zero_()
        list(G.parameters())[-1].fill_(4.0)
    opt_g = torch.optim.SGD(G.parameters(), lr=0.0)
    opt_d = torch.optim.SGD(D.parameters(), lr=0.0)
    for step in range(steps):
        for _ in range(k):
            opt_d.zero_grad()
            discriminator_loss(D(sample_data(batch_size)), D(G(sample_noise(batch_size)).detach())).backward()
            opt_d.step()
        opt_g.zero_grad()
        generator_loss(D(G(sample_noise(batch_size))), kind).backward()
        opt_g.step()
    return {"d_loss": [], "g_loss": []}
''', set(), ""),
    V("d_log1p_of_minus_sigmoid", "discriminator_loss", '''
def discriminator_loss(d_real, d_fake):
    return -torch.log(torch.sigmoid(d_real)).mean() - torch.log1p(-torch.sigmoid(d_fake)).mean()
''', PROPERTIES | {"gan1d.values"}, STABILITY_FIX),
]

"""Train a GAN on Fashion-MNIST with the losses in codebase/gan.py (one function per loss).

    python run_gan.py --loss_type nonsaturating      # or wasserstein_gp, conditional

Each step updates the discriminator on its loss, then the generator on its own.
Every 50 steps a 10x10 grid of samples from a fixed z is written to
out_<loss_type>/fake_%04d.png (for the conditional GAN, each column one class);
at the end the learning curve is saved there too.
"""
import argparse
import os

import torch
from tqdm import tqdm

from codebase import gan, utils
from codebase.network import (
    ConditionalDiscriminator,
    ConditionalGenerator,
    Discriminator,
    Generator,
)

LOSSES = {
    "nonsaturating": (gan.loss_nonsaturating_d, gan.loss_nonsaturating_g),
    "wasserstein_gp": (gan.loss_wasserstein_gp_d, gan.loss_wasserstein_gp_g),
    "conditional": (gan.conditional_loss_nonsaturating_d, gan.conditional_loss_nonsaturating_g),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss_type", "--loss-type", choices=sorted(LOSSES), default="nonsaturating",
                        help="which pair of losses to train with")
    parser.add_argument("--data-dir", default="data",
                        help="the folder that holds FashionMNIST/raw/ (where it is downloaded to when missing)")
    parser.add_argument("--out-dir", default=None, help="output folder (default out_<loss_type>)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--num-epochs", type=int, default=1, help="passes over the training set")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many steps")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    device = utils.pick_device(args.device)
    out_dir = args.out_dir or f"out_{args.loss_type}"
    conditional = args.loss_type == "conditional"

    # 1. data and models
    loader = utils.load_fashion_mnist(args.data_dir, batch_size=64)
    os.makedirs(out_dir, exist_ok=True)   # only once there is data to train on
    g = (ConditionalGenerator() if conditional else Generator()).to(device)
    d = (ConditionalDiscriminator() if conditional else Discriminator()).to(device)
    g_optimizer = torch.optim.Adam(g.parameters(), lr=1e-3, betas=(0.5, 0.999))
    d_optimizer = torch.optim.Adam(d.parameters(), lr=1e-3, betas=(0.5, 0.999))
    loss_d, loss_g = LOSSES[args.loss_type]
    z_fixed = torch.randn(100, g.dim_z, device=device)
    y_fixed = torch.arange(10, device=device).repeat(10) if conditional else None

    # 2. training: a discriminator step, then a generator step
    total = len(loader) * args.num_epochs
    if args.max_steps is not None:
        total = min(total, args.max_steps)
    d_losses, g_losses = [], []
    step = 0
    with tqdm(total=total, desc=args.loss_type, unit="step") as bar:
        for _epoch in range(args.num_epochs):
            for x_real, y_real in loader:
                if step >= total:
                    break
                x_real, y_real = x_real.to(device), y_real.to(device)
                labels = (y_real,) if conditional else ()
                for optimizer, loss_fn, losses in ((d_optimizer, loss_d, d_losses), (g_optimizer, loss_g, g_losses)):
                    optimizer.zero_grad()
                    loss = loss_fn(g, d, x_real, *labels, device=device)
                    loss.backward()
                    optimizer.step()
                    losses.append(loss.item())
                step += 1
                bar.update(1)
                bar.set_postfix(d_loss=f"{d_losses[-1]:.3f}", g_loss=f"{g_losses[-1]:.3f}")
                if step % 50 == 0 or step == total:
                    utils.save_samples(g, z_fixed, os.path.join(out_dir, f"fake_{step:04d}.png"), y=y_fixed)

    # 3. learning curve
    utils.save_learning_curve(d_losses, g_losses, out_dir, f"GAN, {args.loss_type} loss")
    print(f"Saved samples and learning_curve.png in {out_dir}/")


if __name__ == "__main__":
    main()

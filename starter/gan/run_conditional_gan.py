"""Train a class-conditional GAN (projection discriminator) on Fashion-MNIST.

    python run_conditional_gan.py

Every 50 steps a 10x10 grid of samples is written to
out_nonsaturating_conditional/fake_%04d.png, each column one class; at the end
the learning curve is saved there too.
"""
import argparse
import os

import torch
from tqdm import tqdm

from codebase import gan, utils
from codebase.network import ConditionalDiscriminator, ConditionalGenerator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="data",
                        help="the folder that holds FashionMNIST/raw/ (where it is downloaded to when missing)")
    parser.add_argument("--out-dir", default="out_nonsaturating_conditional", help="output folder")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--num-epochs", type=int, default=1, help="passes over the training set")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many steps")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    device = utils.pick_device(args.device)

    # 1. data and models
    loader = utils.load_fashion_mnist(args.data_dir, batch_size=64)
    os.makedirs(args.out_dir, exist_ok=True)   # only once there is data to train on
    g = ConditionalGenerator().to(device)
    d = ConditionalDiscriminator().to(device)
    g_optimizer = torch.optim.Adam(g.parameters(), lr=1e-3, betas=(0.5, 0.999))
    d_optimizer = torch.optim.Adam(d.parameters(), lr=1e-3, betas=(0.5, 0.999))
    z_fixed = torch.randn(100, g.dim_z, device=device)
    y_fixed = torch.arange(10, device=device).repeat(10)  # grid column c shows class c

    # 2. training
    total = len(loader) * args.num_epochs
    if args.max_steps is not None:
        total = min(total, args.max_steps)
    d_losses, g_losses = [], []
    step = 0
    with tqdm(total=total, desc="conditional", unit="step") as bar:
        for _epoch in range(args.num_epochs):
            for x_real, y_real in loader:
                if step >= total:
                    break
                x_real, y_real = x_real.to(device), y_real.to(device)
                d_loss, g_loss = utils.train_step(gan.conditional_loss_nonsaturating, g, d,
                                                  g_optimizer, d_optimizer, x_real, y_real,
                                                  device=device)
                d_losses.append(d_loss)
                g_losses.append(g_loss)
                step += 1
                bar.update(1)
                bar.set_postfix(d_loss=f"{d_loss:.3f}", g_loss=f"{g_loss:.3f}")
                if step % 50 == 0 or step == total:
                    path = os.path.join(args.out_dir, f"fake_{step:04d}.png")
                    utils.save_samples(g, z_fixed, path, y=y_fixed)

    # 3. learning curve
    utils.save_learning_curve(d_losses, g_losses, args.out_dir, "conditional GAN, non-saturating loss")
    print(f"Saved samples and learning_curve.png in {args.out_dir}/")


if __name__ == "__main__":
    main()

"""Train an unconditional GAN on Fashion-MNIST with one of the losses in codebase/gan.py.

    python run_gan.py --loss_type nonsaturating      # or minimax, wasserstein_gp

Every 50 steps a 10x10 grid of samples from a fixed z is written to
out_<loss_type>/fake_%04d.png; at the end the learning curve is saved there too.
"""
import argparse
import os

import torch
from tqdm import tqdm

from codebase import gan, utils
from codebase.network import Discriminator, Generator

LOSSES = {
    "nonsaturating": gan.loss_nonsaturating,
    "minimax": gan.loss_minimax,
    "wasserstein_gp": gan.loss_wasserstein_gp,
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

    # 1. data and models
    loader = utils.load_fashion_mnist(args.data_dir, batch_size=64)
    os.makedirs(out_dir, exist_ok=True)   # only once there is data to train on
    g = Generator().to(device)
    d = Discriminator().to(device)
    g_optimizer = torch.optim.Adam(g.parameters(), lr=1e-3, betas=(0.5, 0.999))
    d_optimizer = torch.optim.Adam(d.parameters(), lr=1e-3, betas=(0.5, 0.999))
    loss_fn = LOSSES[args.loss_type]
    z_fixed = torch.randn(100, g.dim_z, device=device)

    # 2. training
    total = len(loader) * args.num_epochs
    if args.max_steps is not None:
        total = min(total, args.max_steps)
    d_losses, g_losses = [], []
    step = 0
    with tqdm(total=total, desc=args.loss_type, unit="step") as bar:
        for _epoch in range(args.num_epochs):
            for x_real, _y in loader:
                if step >= total:
                    break
                x_real = x_real.to(device)
                d_loss, g_loss = utils.train_step(loss_fn, g, d, g_optimizer, d_optimizer,
                                                  x_real, device=device)
                d_losses.append(d_loss)
                g_losses.append(g_loss)
                step += 1
                bar.update(1)
                bar.set_postfix(d_loss=f"{d_loss:.3f}", g_loss=f"{g_loss:.3f}")
                if step % 50 == 0 or step == total:
                    utils.save_samples(g, z_fixed, os.path.join(out_dir, f"fake_{step:04d}.png"))

    # 3. learning curve
    utils.save_learning_curve(d_losses, g_losses, out_dir, f"GAN, {args.loss_type} loss")
    print(f"Saved samples and learning_curve.png in {out_dir}/")


if __name__ == "__main__":
    main()

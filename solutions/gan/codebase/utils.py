"""Helpers shared by run_gan.py and run_conditional_gan.py: data, one training step, plots."""
import csv
import os
import sys

import torch


def load_fashion_mnist(data_dir: str, batch_size: int = 64) -> torch.utils.data.DataLoader:
    """Fashion-MNIST training set scaled to [-1, 1], shuffled, incomplete last batch dropped.

    Downloads the data into ``data_dir`` when it is not there yet. If the
    download fails (no network), exits with a message saying where to put the files.
    """
    from torchvision import datasets, transforms

    transform = transforms.Compose([
        transforms.ToTensor(),                  # [0, 1]
        transforms.Normalize((0.5,), (0.5,)),   # [-1, 1]
    ])
    try:
        train_set = datasets.FashionMNIST(data_dir, train=True, download=True, transform=transform)
    except Exception as err:  # URLError, RuntimeError, ... all mean the same to a student
        raw = os.path.join(data_dir, "FashionMNIST", "raw")
        sys.exit(
            f"Could not download Fashion-MNIST into {data_dir!r} ({type(err).__name__}: {err}).\n"
            f"Either connect to the internet and run again, or download the four files\n"
            f"  train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz\n"
            f"  t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz\n"
            f"from https://github.com/zalandoresearch/fashion-mnist, put them in {raw!r},\n"
            f"and run again (or pass --data-dir pointing at a folder that has them)."
        )
    return torch.utils.data.DataLoader(train_set, batch_size=batch_size, shuffle=True, drop_last=True)


def train_step(loss_fn, g, d, g_optimizer, d_optimizer, *loss_args, device) -> tuple[float, float]:
    """One simultaneous update of D and G from a single call of ``loss_fn``.

    Both gradients are taken before either network changes: dd_loss/dphi for the
    discriminator and dg_loss/dtheta for the generator. (The original loop called
    d_loss.backward(), stepped D, then g_loss.backward() through the graph of the
    old D, which current PyTorch refuses because D's weights changed in place.)

    Returns:
        (d_loss, g_loss) as Python floats, for logging.
    """
    d_loss, g_loss = loss_fn(g, d, *loss_args, device=device)
    d_params = [p for p in d.parameters() if p.requires_grad]
    g_params = [p for p in g.parameters() if p.requires_grad]
    d_grads = torch.autograd.grad(d_loss, d_params, retain_graph=True, allow_unused=True)
    g_grads = torch.autograd.grad(g_loss, g_params, allow_unused=True)
    for params, grads in ((d_params, d_grads), (g_params, g_grads)):
        for p, grad in zip(params, grads):
            p.grad = torch.zeros_like(p) if grad is None else grad
    d_optimizer.step()
    g_optimizer.step()
    return d_loss.item(), g_loss.item()


def save_samples(g, z, path: str, y=None) -> None:
    """Save a 10x10 grid of G(z) (or G(z, y)) with pixel values mapped from [-1, 1]."""
    from torchvision.utils import save_image

    was_training = g.training
    g.eval()
    with torch.no_grad():
        x = g(z) if y is None else g(z, y)
    g.train(was_training)
    save_image(x, path, nrow=10, normalize=True, value_range=(-1, 1))


def save_learning_curve(d_losses: list, g_losses: list, out_dir: str, title: str) -> None:
    """Write losses.csv and learning_curve.png (both losses per step) into out_dir."""
    with open(os.path.join(out_dir, "losses.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "d_loss", "g_loss"])
        writer.writerows(zip(range(1, len(d_losses) + 1), d_losses, g_losses))

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(d_losses, label="d_loss", lw=0.8)
    ax.plot(g_losses, label="g_loss", lw=0.8)
    ax.set_xlabel("training step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "learning_curve.png"), dpi=100)
    plt.close(fig)


def pick_device(name: str | None) -> torch.device:
    """The requested device, or CUDA when available, else the CPU."""
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")

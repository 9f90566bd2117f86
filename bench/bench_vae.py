"""Benchmark the vae notebook's evaluation: L_100 over 10,000 test-sized images on the CPU.

    python bench/bench_vae.py

Target (issue 3): <= 15 s on the 2-core development machine (the original
course run took about 160 s per evaluation). Figures go in docs/benchmarks.md.
"""
import time

import torch

from grader.engine import reference
from grader.engine.paths import SOLUTIONS_DIR


def main() -> None:
    nb = reference.load_path(SOLUTIONS_DIR / "vae" / "vae_wake_sleep.ipynb")   # the reference notebook's functions
    torch.manual_seed(0)
    model = nb.VAE()
    images = torch.rand(10_000, 1, 28, 28)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, torch.zeros(10_000)),
                                         batch_size=100)
    for threads in sorted({1, torch.get_num_threads()}):
        torch.set_num_threads(threads)
        start = time.perf_counter()
        value = nb.evaluate(model, loader, k=100)
        print(f"L_100 over 10,000 images, batch 100, {threads} thread(s): "
              f"{time.perf_counter() - start:.1f} s (mean bound {value:.1f} nats)")


if __name__ == "__main__":
    main()

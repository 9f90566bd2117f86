"""Calibrate the gan1d fit check: train the reference notebook's `train` on fresh probe nets over several seeds
and print the mean, spread and Wasserstein-1 distance to N(4, 1.25^2) its generator reaches.

    python bench/calibrate_gan1d_fit.py [--seeds 12] [--steps 1000]

The thresholds in assignments/gan1d/hidden.py (and their margins in docs/grading.md) come from this table.
"""
import argparse
import time

import torch

from grader.engine import reference
from grader.engine.assignment import import_part, load_assignment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=12, help="how many seeds (0, 1, ...)")
    parser.add_argument("--steps", type=int, default=1000, help="generator steps, as the fit check runs")
    args = parser.parse_args()
    a = load_assignment("gan1d")
    ref = reference.load_module(a)
    fixtures = import_part(a.folder.parent, "gan1d", "fixtures")
    hidden = import_part(a.folder.parent, "gan1d", "hidden")
    print("| seed | mean | std | W1 | s |\n| --- | --- | --- | --- | --- |")
    rows = []
    for seed in range(args.seeds):
        torch.manual_seed(seed)
        g, d = fixtures.ProbeGenerator(), fixtures.ProbeDiscriminator()
        start = time.time()
        ref.train(g, d, args.steps, k=1, kind="nonsaturating", batch_size=256, lr=1e-3)
        with torch.no_grad():
            x = g(torch.rand(5000, 1, generator=torch.Generator().manual_seed(0))).reshape(-1).double().numpy()
        rows.append((x.mean(), x.std(), hidden.w1_to_target(x)))
        print(f"| {seed} | {x.mean():.3f} | {x.std():.3f} | {rows[-1][2]:.3f} | {time.time() - start:.1f} |")
    for i, name in enumerate(("mean", "std", "W1")):
        values = [r[i] for r in rows]
        print(f"{name}: {min(values):.3f} to {max(values):.3f}")


if __name__ == "__main__":
    main()

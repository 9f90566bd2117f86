"""Benchmark the gan assignment: grade one submission, check one, and a training step.

    python bench/bench_gan.py [--repeats 5]

Prints a Markdown table; copy the figures into docs/benchmarks.md.
Targets (issue 2): grade <= 3 s, check <= 3 s on the 2-core development machine.
"""
import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def wall(cmd: list[str], cwd: Path | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{cmd} failed:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def timed(label: str, cmd: list[str], repeats: int, cwd: Path | None = None) -> tuple[str, float, float]:
    times = [wall(cmd, cwd) for _ in range(repeats)]
    return label, statistics.median(times), min(times)


def train_step_seconds(steps: int = 20) -> float:
    """Seconds per step of the real run_gan.py loop (course networks, batch 64, CPU)."""
    sys.path.insert(0, str(REPO / "solutions"))
    import torch

    from codebase import gan, utils
    from codebase.network import Discriminator, Generator

    torch.manual_seed(0)
    g, d = Generator(), Discriminator()
    g_opt = torch.optim.Adam(g.parameters(), lr=1e-3, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(d.parameters(), lr=1e-3, betas=(0.5, 0.999))
    x = torch.rand(64, 1, 28, 28) * 2 - 1
    out = {}
    for name, fn in (("nonsaturating", gan.loss_nonsaturating), ("wasserstein_gp", gan.loss_wasserstein_gp)):
        utils.train_step(fn, g, d, g_opt, d_opt, x, device=torch.device("cpu"))  # warm-up
        start = time.perf_counter()
        for _ in range(steps):
            utils.train_step(fn, g, d, g_opt, d_opt, x, device=torch.device("cpu"))
        out[name] = (time.perf_counter() - start) / steps
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    py = sys.executable
    rows = [timed("`python -c 'import torch'` (one cold interpreter)", [py, "-c", "import torch"], args.repeats)]
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(timed("`grader grade` one reference submission (CLI, end to end)",
                          [py, "-m", "grader", "grade", "--assignment", "gan", "--out", tmp, str(REPO / "solutions")],
                          args.repeats))
    rows.append(timed("`grader check` in the starter folder (CLI, end to end)",
                      [py, "-m", "grader", "check"], args.repeats, cwd=REPO / "starter"))
    print("| what | median s | best s |\n| --- | --- | --- |")
    for label, med, best in rows:
        print(f"| {label} | {med:.2f} | {best:.2f} |")
    for name, sec in train_step_seconds().items():
        print(f"| `run_gan.py --loss_type {name}`: one training step, batch 64, CPU | {sec:.3f} | |")


if __name__ == "__main__":
    main()

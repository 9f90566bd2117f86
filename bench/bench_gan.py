"""Benchmark the gan assignment: grade one submission, check one, and a training step.

    python bench/bench_gan.py [--repeats 5]

Prints a Markdown table; copy the figures into docs/benchmarks.md.
Targets: grade <= 3 s; `grader check` of a finished gan.py at most 1.5x one cold
`python -c "import torch"` on the 2-core development machine (the commands are
timed in turns, so that a busy moment costs each of them alike).
"""
import argparse
import shutil
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
        sys.exit(f"{cmd} failed:\n{proc.stdout[-1000:]}{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def train_step_seconds(steps: int = 20) -> float:
    """Seconds per step of the real run_gan.py loop (course networks, batch 64, CPU)."""
    sys.path.insert(0, str(REPO / "solutions" / "gan"))
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
    with tempfile.TemporaryDirectory() as tmp:
        student = Path(tmp) / "hw"        # a student's folder with the work done
        shutil.copytree(REPO / "starter" / "gan", student, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copyfile(REPO / "solutions" / "gan" / "codebase" / "gan.py", student / "codebase" / "gan.py")
        commands = {
            "`python -c 'import torch'` (one cold interpreter)": ([py, "-c", "import torch"], None),
            "`grader grade --assignment gan` one reference submission (CLI, end to end)":
                ([py, "-m", "grader", "grade", "--force", "--assignment", "gan", "--out", f"{tmp}/out",
                  str(REPO / "solutions" / "gan")], None),
            "`grader check` in a finished student folder (CLI, end to end)": ([py, "-m", "grader", "check"], student),
        }
        times: dict[str, list[float]] = {label: [] for label in commands}
        for _ in range(args.repeats):
            for label, (cmd, cwd) in commands.items():
                times[label].append(wall(cmd, cwd))
    torch_s = statistics.median(next(iter(times.values())))
    print("| what | median s | best s | / cold torch import |\n| --- | --- | --- | --- |")
    for label, ts in times.items():
        print(f"| {label} | {statistics.median(ts):.2f} | {min(ts):.2f} | {statistics.median(ts) / torch_s:.2f} |")
    for name, sec in train_step_seconds().items():
        print(f"| `run_gan.py --loss_type {name}`: one training step, batch 64, CPU | {sec:.3f} | | |")


if __name__ == "__main__":
    main()

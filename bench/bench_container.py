"""Benchmark the Gradescope bundle in Docker: peak memory and wall time per submission.

    python bench/bench_container.py [--assignment gan ...] [--cpus 0.5]

Every bundled example of each assignment is graded once by ``run_autograder`` in
a fresh container at half a CPU and with no memory limit, so that the peak is
what a submission really needs (Gradescope's default is 768 MB). Uses the images
and wheelhouse of tests/container.py (built on first use, then cached). Prints
one line per submission and a Markdown table; copy the figures into
docs/benchmarks.md.
"""
import argparse
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import container  # noqa: E402  (tests/container.py)
from grader.builders.autograder import build  # noqa: E402

ASSIGNMENTS = ("gan", "gan_split", "gan1d", "vae")


def bench(assignment: str, cpus: str) -> tuple[int, float, float, float, list[str]]:
    """Grade every example of ``assignment`` once: (count, max peak MiB, median s, max s, problems)."""
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "autograder.zip"
        build(assignment, bundle)
        image = container.setup_image(bundle)
    peaks, seconds, problems = [], [], []
    for example in sorted((REPO / "assignments" / assignment / "examples").iterdir()):
        g = container.run_autograder(image, example, memory=None, cpus=cpus)
        score = g.results.get("score") if g.results else None
        print(f"{assignment}/{example.name}: peak {g.peak_mib:.0f} MiB, {g.seconds:.1f} s, score {score}",
              flush=True)
        if g.killed:
            problems.append(f"{example.name} was not graded (exit {g.exit_code}, OOM {g.oom_killed})")
        peaks.append(g.peak_mib or 0.0)
        seconds.append(g.seconds)
    return len(seconds), max(peaks), statistics.median(seconds), max(seconds), problems


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--assignment", action="append", choices=ASSIGNMENTS,
                        help="assignment to measure (repeatable; default: all)")
    parser.add_argument("--cpus", default=container.CPUS, help="CPUs per container (default 0.5, as Gradescope)")
    args = parser.parse_args()
    rows = [(a, *bench(a, args.cpus)) for a in args.assignment or ASSIGNMENTS]
    print(f"\n| assignment | submissions | peak MiB (no limit) | median s at {args.cpus} CPU | max s |")
    print("| --- | --- | --- | --- | --- |")
    for a, n, peak, median, worst, _ in rows:
        print(f"| {a} | {n} | {peak:.0f} | {median:.1f} | {worst:.1f} |")
    for a, *_, problems in rows:
        for p in problems:
            print(f"{a}: {p}")


if __name__ == "__main__":
    main()

"""Benchmark batch grading: a class of N gan submissions with --jobs 2, and one warm submission.

    python bench/bench_batch.py [--n 200] [--jobs 2] [--repeats 3]

The class is made from the bundled examples (correct, typical mistakes, a crash
at import, the untouched starter), half of them zipped as an LMS would export
them. Prints a Markdown table; copy the figures into docs/benchmarks.md.
Targets on the 2-core development machine: 200 submissions in <= 20 s with --jobs 2
(issue 21; 60 s in issue 6); one cold `grader grade` of one submission in <= 1.3x a
cold torch import (issue 21); one submission in <= 1 s once the worker is warm.
"""
import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "assignments" / "gan" / "examples"


def make_class(folder: Path, n: int) -> list[Path]:
    """``n`` submissions cycling through the examples; every other one as a zip."""
    examples = sorted(p for p in EXAMPLES.iterdir() if p.is_dir())
    folder.mkdir(parents=True)
    subs = []
    for i in range(n):
        src = examples[i % len(examples)]
        dest = folder / f"student{i:03d}_{src.name}"
        if i % 2:
            with zipfile.ZipFile(dest.with_suffix(".zip"), "w") as zf:
                for f in src.rglob("*"):
                    if f.is_file():
                        zf.write(f, f.relative_to(src).as_posix())
            subs.append(dest.with_suffix(".zip"))
        else:
            shutil.copytree(src, dest)
            subs.append(dest)
    return subs


def wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode not in (0, 3):
        sys.exit(f"{cmd} failed:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def warm_single(repeats: int) -> list[float]:
    """Seconds to grade one submission in a process whose worker server is already warm."""
    sys.path.insert(0, str(REPO))
    from grader.engine.assignment import load_assignment
    from grader.engine.grade import grade

    a = load_assignment("gan")
    sub = EXAMPLES / "alice_correct"
    grade(a, sub)  # starts the worker server, imports the checks and the reference
    grade(a, sub)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        r = grade(a, sub)
        times.append(time.perf_counter() - start)
        assert r.score == r.max_score, r.score
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="submissions in the class (default 200)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    py = sys.executable
    cold = [wall([py, "-c", "import torch"]) for _ in range(args.repeats)]
    tmp = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    try:
        make_class(tmp / "class", args.n)
        batch = []
        for k in range(args.repeats):
            out = tmp / f"out{k}"
            batch.append(wall([py, "-m", "grader", "grade", "--assignment", "gan", "--jobs", str(args.jobs),
                               "--out", str(out), str(tmp / "class")]))
            rows = (out / "grades.csv").read_text().splitlines()
            assert len(rows) == args.n + 1, len(rows)
        regrade = wall([py, "-m", "grader", "grade", "--assignment", "gan", "--jobs", str(args.jobs),
                        "--out", str(tmp / "out0"), str(tmp / "class")])
        one = [wall([py, "-m", "grader", "grade", "--force", "--assignment", "gan", "--out", str(tmp / "one"),
                     str(EXAMPLES / "alice_correct")]) for _ in range(args.repeats)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    single = warm_single(max(5, args.repeats))
    med_cold = statistics.median(cold)
    print("| what | target | median s | best s | / cold torch import |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| `python -c 'import torch'` (one cold interpreter) | | {med_cold:.2f} | {min(cold):.2f} | 1.0 |")
    med = statistics.median(batch)
    print(f"| `grader grade --force` of one submission, a fresh process | <= 1.3x | {statistics.median(one):.2f} "
          f"| {min(one):.2f} | {statistics.median(one) / med_cold:.2f} |")
    print(f"| `grader grade --jobs {args.jobs}`: {args.n} gan submissions, CLI end to end | <= 20 s "
          f"| {med:.1f} | {min(batch):.1f} | {med / med_cold:.1f} |")
    print(f"| the same, per submission | | {med / args.n:.3f} | {min(batch) / args.n:.3f} "
          f"| {med / args.n / med_cold:.2f} |")
    print(f"| regrading the unchanged class (incremental, nothing to grade) | | {regrade:.2f} | | "
          f"{regrade / med_cold:.2f} |")
    ms = statistics.median(single)
    print(f"| one submission, worker warm (in-process) | <= 1 s | {ms:.3f} | {min(single):.3f} "
          f"| {ms / med_cold:.2f} |")


if __name__ == "__main__":
    main()

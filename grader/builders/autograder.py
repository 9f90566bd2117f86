"""Gradescope autograder bundle: ``grader autograder --assignment A --out autograder.zip``.

The zip holds ``setup.sh`` (installs Python, bubblewrap, torch and the grader
with pinned dependencies; torch from the CPU index unless ``--torch-index`` or
``DGM_TORCH_INDEX`` says otherwise), ``SECURITY.md`` (what isolates student code
there: a uid per submission, since Docker forbids bubblewrap's namespaces),
``run_autograder`` (grades
``/autograder/submission`` into ``/autograder/results/results.json`` with
:mod:`grader.app.gradescope`), and the grader's source with the hidden material:
hidden checks, reference solutions, answer keys. ``run_autograder`` writes a
valid results file even when the grader itself cannot run. Set
``AUTOGRADER_ROOT`` (default ``/autograder``) and ``AUTOGRADER_PYTHON`` (default:
the setup's virtual environment) to try it outside Gradescope.
"""
from __future__ import annotations

import os
import sys
import zipfile
from importlib import metadata
from pathlib import Path

from ..engine.paths import REPO_ROOT
from ..sandbox.isolation import DEFAULT_UID_RANGE

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
TORCH_PACKAGES = ("torch", "torchvision")

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, while it builds the autograder image (Ubuntu 22.04).
# Everything goes into a virtual environment, /opt/dgm-venv, with the versions the course
# tested (requirements.txt) and torch, CPU-only by default.
# Where torch comes from: $DGM_TORCH_INDEX, else torch_index.txt in this bundle, else the CPU
# index; "pypi" (or empty) means pip's own configuration (PIP_INDEX_URL, PIP_FIND_LINKS, ...).
set -euo pipefail
cd "$(dirname "$0")"
if [ -n "${{DGM_TORCH_INDEX+set}}" ]; then TORCH_INDEX="$DGM_TORCH_INDEX"
elif [ -f torch_index.txt ]; then TORCH_INDEX="$(head -n 1 torch_index.txt | tr -d '[:space:]')"
else TORCH_INDEX={cpu_index}; fi
TORCH_FROM=()
if [ -n "$TORCH_INDEX" ] && [ "$TORCH_INDEX" != pypi ]; then TORCH_FROM=(--index-url "$TORCH_INDEX"); fi
echo "setup.sh: torch from ${{TORCH_INDEX:-pypi}}"
export DEBIAN_FRONTEND=noninteractive
PYVER={pyver}
apt-get update -y
apt-get install -y --no-install-recommends python3 python3-venv "python$PYVER" "python$PYVER-venv" \\
  || apt-get install -y --no-install-recommends python3 python3-venv
apt-get install -y --no-install-recommends bubblewrap \\
  || echo "setup.sh: bubblewrap is unavailable; results will list the isolation layers in force"
if command -v "python$PYVER" >/dev/null; then PY="python$PYVER"; PINNED=1; else PY=python3; PINNED=0; fi
"$PY" -m venv /opt/dgm-venv
V=/opt/dgm-venv/bin/python
"$V" -m pip install --upgrade pip
# CPU-only torch by default: the default wheels carry CUDA (gigabytes), and the graders have no GPU.
if [ "$PINNED" = 1 ]; then
  "$V" -m pip install ${{TORCH_FROM[@]+"${{TORCH_FROM[@]}}"}} {torch_pins}
  "$V" -m pip install -r requirements.txt
else
  echo "setup.sh: python$PYVER is unavailable; installing the newest versions that fit $("$PY" --version)"
  "$V" -m pip install ${{TORCH_FROM[@]+"${{TORCH_FROM[@]}}"}} {torch_names}
fi
"$V" -m pip install -e .
"$V" -c "import grader, torch; print('dgm-harness ready; torch', torch.__version__)"
# The grading material is for root alone: student code runs as other uids (see run_autograder).
chmod -R go-rwx "$(pwd)"
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission: grade /autograder/submission into
# /autograder/results/results.json. Whatever happens, a valid results file is left there.
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
PY="${{AUTOGRADER_PYTHON:-}}"
if [ -z "$PY" ]; then
  if [ -x /opt/dgm-venv/bin/python ]; then PY=/opt/dgm-venv/bin/python; else PY=python3; fi
fi
RESULTS="$ROOT/results/results.json"
mkdir -p "$ROOT/results"
rm -f "$RESULTS"
# The solutions, hidden checks and answer keys live in source/: no other user may enter it.
# (Student code runs as a uid of its own; the grader checks this again before it runs any.)
chmod go-rwx "$ROOT/source" 2>/dev/null || true
cd "$ROOT/source" || true
PYTHONPATH="$ROOT/source${{PYTHONPATH:+:$PYTHONPATH}}" timeout {timeout_s} \\
  "$PY" -m grader.app.gradescope run --assignment {assignment} \\
  --submission "$ROOT/submission" --results "$RESULTS"
status=$?
if ! "$PY" -c 'import json, sys; d = json.load(open(sys.argv[1])); assert isinstance(d, dict) and "tests" in d' \\
    "$RESULTS" 2>/dev/null; then
  cat > "$RESULTS" <<EOF
{{"score": 0, "output": "The autograder could not grade this submission (status $status). Course staff have been told; your upload is kept and will be graded.", "tests": [], "visibility": "visible", "stdout_visibility": "hidden"}}
EOF
fi
exit 0
"""


SECURITY_MD = """# What isolates student code on Gradescope

Gradescope runs `run_autograder` as root inside a Docker container. Docker's
default seccomp profile stops bubblewrap from creating namespaces there, so the
grader falls back to the barrier that needs none: each submission's code runs
as a uid of its own (from {uid_range}), never as root. Every report lists the
layers that were in force ("Isolation: ..." in results.json).

What holds there:

- The solutions, hidden checks and answer keys in `source/` cannot be read by
  student code: `setup.sh` and `run_autograder` make `source/` private to root,
  and the grader asks the kernel, as the student's uid, before it runs any
  student code; if the folder is still reachable, it grades nothing.
- The submission is copied to a folder only that uid can read; only numbers
  come back from it, and only the grader (root) writes `results.json`.
- Everything the uid started (processes at any depth, detached, re-forking,
  deaf to signals) is killed after every graded function, with its System V
  IPC objects, keyring keys and files; POSIX message queues cannot be made.
- Memory (all its processes together), processes, scratch files and time are
  capped; going over a cap fails that function with a message naming the cap.
- `run_autograder` leaves no process and no temporary folder behind, even when
  the grader is stopped by Gradescope's timeout (SIGTERM).

What does not hold there: the network is not closed (Gradescope's containers
have network access, and closing it needs the namespaces Docker forbids).

Tested by tests/test_hostile.py::test_fake_gradescope_without_bubblewrap_keeps_the_solutions_and_kills_everything
(this bundle unpacked into an /autograder-like root, bubblewrap disabled).

## Gradescope settings it was tested with

Gradescope's defaults: 768 MB of memory, 0.5 CPU, a 10-minute timeout, and
its Ubuntu 22.04 base image (assumed; `setup.sh` needs apt and Python 3).
tests/test_container.py runs this bundle's `setup.sh` and `run_autograder`
in Docker with those limits (`--memory 768m --memory-swap 768m --cpus 0.5`,
default seccomp and capabilities, a fresh container per submission) on a
Debian bookworm base, and grades every bundled example to the score the
grader gives outside the container. If a submission is killed at 768 MB
("could not grade this submission"), raise the autograder's memory in
Gradescope's settings; docs/benchmarks.md lists the peak memory of each
assignment.
"""


def pins(names: list[str]) -> dict[str, str]:
    """name -> the version installed here, for reproducible grading images."""
    out = {}
    for name in names:
        base = name.split(";")[0].split("[")[0]
        for sep in ("==", ">=", "<=", "~=", ">", "<"):
            base = base.split(sep)[0]
        base = base.strip()
        try:
            out[base] = metadata.version(base)
        except metadata.PackageNotFoundError:
            out[base] = ""
    return out


def build(assignment: str, out: Path, repo_root: Path = REPO_ROOT, timeout_s: int = 540,
          torch_index: str | None = None) -> list[str]:
    """Write the Gradescope autograder zip for ``assignment`` to ``out``; return its members.

    ``torch_index``: the package index setup.sh installs torch from (``pypi``: pip's
    own configuration), written to torch_index.txt; None keeps the CPU index.
    """
    from ..engine.assignment import load_assignment

    a = load_assignment(assignment, repo_root / "assignments")   # a clear error for an unknown name
    from .release import project_dependencies

    versions = pins(project_dependencies(repo_root))
    torch_pins = " ".join(f"{n}=={v}" if v else n for n, v in versions.items() if n in TORCH_PACKAGES)
    requirements = "".join(f"{n}=={v}\n" if v else f"{n}\n" for n, v in versions.items()
                           if n not in TORCH_PACKAGES)
    members: dict[str, bytes | Path] = {
        "setup.sh": SETUP_SH.format(cpu_index=CPU_INDEX, torch_pins=torch_pins, torch_names=" ".join(TORCH_PACKAGES),
                                    pyver="{}.{}".format(*sys.version_info[:2])).encode(),
        "run_autograder": RUN_AUTOGRADER.format(assignment=assignment, timeout_s=timeout_s).encode(),
        "requirements.txt": requirements.encode(),
        "pyproject.toml": repo_root / "pyproject.toml",
        "README.md": repo_root / "README.md",
        "SECURITY.md": SECURITY_MD.format(uid_range=os.environ.get("DGM_UID_RANGE", DEFAULT_UID_RANGE)).encode(),
    }
    if torch_index is not None:
        members["torch_index.txt"] = (torch_index.strip() + "\n").encode()
    folders = ["grader", *(f"{top}/{n}" for n in (assignment, *a.uses) for top in ("assignments", "solutions", "starter"))]
    for folder in folders:
        for path in sorted((repo_root / folder).rglob("*")):
            rel = path.relative_to(repo_root)
            if path.is_file() and "__pycache__" not in rel.parts and "examples" not in rel.parts \
                    and ".ipynb_checkpoints" not in rel.parts:
                members[rel.as_posix()] = path
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in members.items():
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            executable = name in ("setup.sh", "run_autograder") or name.endswith(".sh")
            info.external_attr = (0o100755 if executable else 0o100644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, content.read_bytes() if isinstance(content, Path) else content)
    os.replace(tmp, out)
    return list(members)

#!/usr/bin/env bash
# Package your work for upload: run it in your assignment folder, one assignment at a time.
#
#   ./make_submission.sh            the gan assignment   -> gan_submission.zip
#   ./make_submission.sh gan1d      the 1-D GAN notebook -> gan1d_submission.zip
#   ./make_submission.sh vae        the VAE notebook     -> vae_submission.zip
#
# gan: checks that codebase/gan.py exists and parses, then zips it with the latest
# sample grid and learning curve of every out_* training folder.
# Notebooks: checks that the file is notebook JSON, that every graded function is
# defined, and that it is under 20 MB (outputs with plots are welcome), then zips it
# with the assignment's short-answers file (<assignment>_answers.yaml) when there is one.
# It stops with a message and a non-zero exit status when something is wrong.
set -euo pipefail
cd "$(dirname "$0")"

PY=$(command -v python3 || command -v python || true)
if [ -z "$PY" ]; then
  echo "make_submission: error: python is not on your PATH (activate your environment first)" >&2
  exit 1
fi

exec "$PY" - "$@" <<'PYEOF'
import ast
import glob
import json
import os
import sys
import zipfile

MAX_NOTEBOOK_MB = 20
ASSIGNMENTS = {
    "gan": {"files": ["codebase/gan.py"], "samples": True, "answers": "gan_answers.yaml"},
    "gan1d": {"notebook": "gan_1d.ipynb", "functions": ["discriminator_loss", "generator_loss", "train"]},
    "vae": {"notebook": "vae_wake_sleep.ipynb", "answers": "vae_answers.yaml",
            "functions": ["gaussian_kl", "wake_loss", "sleep_loss", "iwae_bound", "train_wake_sleep"]},
}
TRAINING_RUNS = {
    "out_nonsaturating": "python run_gan.py --loss_type nonsaturating",
    "out_wasserstein_gp": "python run_gan.py --loss_type wasserstein_gp",
    "out_nonsaturating_conditional": "python run_conditional_gan.py",
}


def fail(msg):
    print(f"make_submission: error: {msg}", file=sys.stderr)
    sys.exit(1)


def check_python(rel):
    if not os.path.isfile(rel):
        fail(f"{rel} is missing; run this script in your assignment folder")
    try:
        with open(rel, encoding="utf-8") as f:
            ast.parse(f.read(), filename=rel)
    except SyntaxError as err:
        fail(f"{rel} does not parse: line {err.lineno}: {err.msg}. Fix it before submitting")
    except UnicodeDecodeError:
        fail(f"{rel} is not UTF-8 text")


def check_notebook(rel, functions):
    if not os.path.isfile(rel):
        fail(f"{rel} is missing; run this script in your assignment folder")
    size_mb = os.path.getsize(rel) / 2**20
    if size_mb > MAX_NOTEBOOK_MB:
        fail(f"{rel} is {size_mb:.1f} MB; the limit is {MAX_NOTEBOOK_MB} MB. Clear large outputs "
             "(Edit > Clear All Outputs, then re-run only the plotting cells) and save again")
    try:
        with open(rel, encoding="utf-8") as f:
            nb = json.load(f)
        cells = nb["cells"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        fail(f"{rel} is not a valid notebook ({err}); save it from Jupyter or Colab again")
    defined = set()
    for i, cell in enumerate(cells, 1):
        if cell.get("cell_type") != "code":
            continue
        src = cell.get("source", "")
        src = "".join(src) if isinstance(src, list) else src
        src = "\n".join("" if l.lstrip().startswith(("%", "!")) else l for l in src.splitlines())
        try:
            tree = ast.parse(src)
        except SyntaxError as err:
            print(f"make_submission: warning: cell {i} of {rel} does not parse (line {err.lineno}: {err.msg})",
                  file=sys.stderr)
            continue
        defined |= {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    missing = [f for f in functions if f not in defined]
    if missing:
        fail(f"{rel} does not define {', '.join(missing)} at the top level of a code cell")


name = sys.argv[1] if len(sys.argv) > 1 else "gan"
if name in ("-h", "--help"):
    print(f"usage: ./make_submission.sh [{'|'.join(ASSIGNMENTS)}]   (default gan)")
    sys.exit(0)
if name not in ASSIGNMENTS:
    fail(f"unknown assignment {name!r}; choose one of: {', '.join(ASSIGNMENTS)}")
spec = ASSIGNMENTS[name]
files, missing_runs = [], []
for rel in spec.get("files", []):
    check_python(rel)
    files.append(rel)
if "notebook" in spec:
    check_notebook(spec["notebook"], spec["functions"])
    files.append(spec["notebook"])
if "answers" in spec:
    if os.path.isfile(spec["answers"]):
        files.append(spec["answers"])
    else:
        print(f"make_submission: warning: {spec['answers']} is missing: its short answers will score 0",
              file=sys.stderr)
if spec.get("samples"):
    for folder in sorted(glob.glob("out*")):
        if os.path.isdir(folder):
            grids = sorted(glob.glob(os.path.join(folder, "fake_*.png")))
            if grids:
                files.append(grids[-1])
            curve = os.path.join(folder, "learning_curve.png")
            if os.path.isfile(curve):
                files.append(curve)
    missing_runs = [f"{d} (train with: {cmd})" for d, cmd in TRAINING_RUNS.items()
                    if not glob.glob(os.path.join(d, "fake_*.png"))]
    for m in missing_runs:
        print(f"make_submission: warning: no samples from {m}", file=sys.stderr)

out = f"{name}_submission.zip"
tmp = out + ".part"
with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
    for f in files:
        zf.write(f, f.replace(os.sep, "/"))
os.replace(tmp, out)
print(f"Wrote {out} with {len(files)} files:")
for f in files:
    print(f"  {f}")
print("Upload it to Gradescope." + (" (Samples are missing: see the warnings above.)" if missing_runs else ""))
PYEOF

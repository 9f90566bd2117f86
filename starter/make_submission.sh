#!/usr/bin/env bash
# Package your work for upload: run it in your assignment folder.
#
#   ./make_submission.sh            writes submission.zip
#
# It checks that codebase/gan.py exists and parses, then zips it together with
# the latest sample grid (and learning curve) of every out_* training folder.
# It stops with a message and a non-zero exit status when something is missing.
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
import os
import sys
import zipfile

OUT = "submission.zip"
REQUIRED = ["codebase/gan.py"]
TRAINING_RUNS = {
    "out_nonsaturating": "python run_gan.py --loss_type nonsaturating",
    "out_wasserstein_gp": "python run_gan.py --loss_type wasserstein_gp",
    "out_nonsaturating_conditional": "python run_conditional_gan.py",
}


def fail(msg):
    print(f"make_submission: error: {msg}", file=sys.stderr)
    sys.exit(1)


files = []
for rel in REQUIRED:
    if not os.path.isfile(rel):
        fail(f"{rel} is missing; run this script in your assignment folder")
    try:
        with open(rel, encoding="utf-8") as f:
            ast.parse(f.read(), filename=rel)
    except SyntaxError as err:
        fail(f"{rel} does not parse: line {err.lineno}: {err.msg}. Fix it before submitting")
    except UnicodeDecodeError:
        fail(f"{rel} is not UTF-8 text")
    files.append(rel)

for folder in sorted(glob.glob("out*")):
    if not os.path.isdir(folder):
        continue
    grids = sorted(glob.glob(os.path.join(folder, "fake_*.png")))
    if grids:
        files.append(grids[-1])
    curve = os.path.join(folder, "learning_curve.png")
    if os.path.isfile(curve):
        files.append(curve)

missing = [f"{d} (train with: {cmd})" for d, cmd in TRAINING_RUNS.items()
           if not glob.glob(os.path.join(d, "fake_*.png"))]
for m in missing:
    print(f"make_submission: warning: no samples from {m}", file=sys.stderr)

tmp = OUT + ".part"
with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
    for f in files:
        zf.write(f, f.replace(os.sep, "/"))
os.replace(tmp, OUT)
print(f"Wrote {OUT} with {len(files)} files:")
for f in files:
    print(f"  {f}")
print("Upload it to Gradescope." + (" (Samples are missing: see the warnings above.)" if missing else ""))
PYEOF

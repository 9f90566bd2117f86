#!/usr/bin/env bash
# Package your work for upload: run it in your assignment folder, one assignment at a time.
#
#   ./make_submission.sh            the assignment whose files are in this folder
#   ./make_submission.sh gan1d      a named one (see ./make_submission.sh --help)
#
# What it checks and packs comes from the assignment's assignment.yaml (through the
# grader you installed): the module must parse, a notebook must be valid and define
# every graded function, and it adds the short-answers file and the training
# outputs the statement asks for. It writes <assignment>_submission.zip, or stops
# with a message and a non-zero exit status when something is wrong.
set -euo pipefail
cd "$(dirname "$0")"

PY=$(command -v python3 || command -v python || true)
if [ -z "$PY" ]; then
  echo "make_submission: error: python is not on your PATH (activate your environment first)" >&2
  exit 1
fi
if ! "$PY" -c "import grader.package" 2>/dev/null; then
  echo "make_submission: error: the grader is not installed in this Python ($PY);" \
       "install your homework bundle first (pip install <bundle folder>)" >&2
  exit 1
fi
exec "$PY" -m grader.package "$@"

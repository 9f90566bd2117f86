#!/usr/bin/env bash
# Package your work for upload. Every assignment folder has its own copy, which packs that
# assignment only, from wherever you run it:
#
#   ./make_submission.sh            writes <assignment>_submission.zip in this folder
#   ./make_submission.sh --help     says which assignment this folder is for
#
# What it checks and packs comes from the assignment's assignment.yaml (through the
# grader you installed): your file defines every graded function (and is this
# assignment's, not another's), a notebook is valid, and it adds the short-answers file
# and the training outputs the statement asks for. It writes <assignment>_submission.zip,
# or stops with a message and a non-zero exit status when something is wrong.
ASSIGNMENT=""   # set in each assignment's folder (python -m grader.starter writes it)
set -euo pipefail
cd "$(dirname "$0")"

PY=$(command -v python3 || command -v python || true)
if [ -z "$PY" ]; then
  echo "make_submission: error: python is not on your PATH (activate your environment first)" >&2
  exit 1
fi
if ! "$PY" -c "import grader.builders.package" 2>/dev/null; then
  echo "make_submission: error: the grader is not installed in this Python ($PY);" \
       "install your homework bundle first (pip install <bundle folder>)" >&2
  exit 1
fi
exec "$PY" -m grader.builders.package ${ASSIGNMENT:+--folder-of "$ASSIGNMENT"} "$@"

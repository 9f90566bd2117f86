"""Where things live: the repository (instructor side) or an installed student bundle.

In the repository the assignments, solutions and starter are folders next to
the package, each with one folder per assignment (``starter/<name>/``). A student bundle (``grader release``) carries its assignments and
a pristine starter inside the package, under ``grader/data/``, so that it works
from a plain ``pip install`` as well as an editable one; it has no solutions.
"""
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent   # grader/ (this is grader/engine/paths.py)
BUNDLE_DATA = PACKAGE_DIR / "data"
IS_BUNDLE = not (PACKAGE_DIR.parent / "assignments").is_dir() and (BUNDLE_DATA / "assignments").is_dir()
REPO_ROOT = BUNDLE_DATA if IS_BUNDLE else PACKAGE_DIR.parent
ASSIGNMENTS_DIR = REPO_ROOT / "assignments"
SOLUTIONS_DIR = REPO_ROOT / "solutions"
STARTER_DIR = REPO_ROOT / "starter"

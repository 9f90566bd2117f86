"""Where things live: the repository (instructor side) or an installed student bundle."""
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
ASSIGNMENTS_DIR = REPO_ROOT / "assignments"
SOLUTIONS_DIR = REPO_ROOT / "solutions"
STARTER_DIR = REPO_ROOT / "starter"

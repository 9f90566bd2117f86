"""Untrusted side of the trust boundary: runs student code and returns numbers only.

This package is mounted alone into the sandbox, so it imports nothing from the
rest of ``grader`` (only the standard library, numpy and torch) and uses
relative imports. The parent process never imports student code.

Importing the package itself is cheap (no torch): the worker server forks its
small helper first (see ``contain``), then loads the probes with
:func:`probe_kinds`.
"""


def probe_kinds() -> dict:
    """Every probe kind, by name (imports torch and the probe modules on first use)."""
    from .gan import PROBES as gan
    from .gan1d import PROBES as gan1d
    from .vae import PROBES as vae

    return {**gan, **gan1d, **vae}

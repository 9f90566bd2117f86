"""Untrusted side of the trust boundary: runs student code and returns numbers only.

This package is mounted alone into the sandbox, so it imports nothing from the
rest of ``grader`` (only the standard library, numpy and torch) and uses
relative imports. The parent process never imports student code.
"""

from .gan import PROBES as _GAN_PROBES
from .gan1d import PROBES as _GAN1D_PROBES
from .vae import PROBES as _VAE_PROBES

PROBE_KINDS: dict = {**_GAN_PROBES, **_GAN1D_PROBES, **_VAE_PROBES}

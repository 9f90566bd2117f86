"""Load the reference solutions (parent process only) and replay a student's draws into them.

The reference functions draw their own randomness with ``torch.randn`` and
``torch.rand``; :func:`replay` makes those calls return the tensors the student
drew instead, so reference and student are compared on the same z and alpha.
"""
from __future__ import annotations

import contextlib
import functools
import importlib.util
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import torch

from ..sandbox import forkserver
from .config import reference_path


class ReferenceMissing(RuntimeError):
    """The reference solutions are not installed (a student bundle): hidden checks cannot run."""


@functools.cache
def load_path(path: Path) -> ModuleType:
    """Import the reference solution at ``path`` (a .py file or a notebook) under a private name."""
    path = Path(path)
    if not path.is_file():
        raise ReferenceMissing(f"reference solution {path} is not available")
    forkserver.taint(f"the reference {path.name}")
    name = "dgm_reference_" + "_".join(path.parts[-3:]).replace(".", "_").replace("-", "_")
    if path.suffix == ".ipynb":  # the same extraction as for students, then run it here (trusted)
        from .notebook import extract

        module = ModuleType(name)
        module.__file__ = str(path)
        sys.modules[name] = module
        exec(compile(extract(path.read_text(), []).source, str(path), "exec"), module.__dict__)
        return module
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_module(assignment) -> ModuleType:
    """The reference solution of ``assignment``'s student module (hidden checks call it)."""
    return load_path(reference_path(assignment, Path(assignment.folder).parent))


SAMPLERS = ("randn", "rand", "randn_like", "bernoulli")
_ORIGINALS: dict = {}
_LOCAL = threading.local()            # the replay queues of this thread (batch grading uses threads)
_INSTALL_LOCK = threading.Lock()


def _dispatcher(name: str):
    """torch.<name> as seen in the parent: the thread's replayed tensor if any, else the real sampler."""
    original = _ORIGINALS[name]

    def draw(*size, **kwargs):
        queues = getattr(_LOCAL, "queues", None)
        if not queues or not queues[name] or kwargs.get("generator") is not None:
            return original(*size, **kwargs)
        value = queues[name].pop(0)
        if name in ("randn_like", "bernoulli"):
            like = size[0]
            return value.reshape(like.shape).to(dtype=like.dtype).clone()
        shape = size[0] if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)) else size
        dtype = kwargs.get("dtype") or torch.get_default_dtype()
        return value.reshape(*shape).to(dtype=dtype).clone()

    return draw


def _install() -> None:
    """Route torch's samplers through :func:`_dispatcher`, once per process."""
    with _INSTALL_LOCK:
        if not _ORIGINALS:
            _ORIGINALS.update({name: getattr(torch, name) for name in SAMPLERS})
            for name in SAMPLERS:
                setattr(torch, name, _dispatcher(name))


@contextlib.contextmanager
def replay(randn: list[torch.Tensor] = (), rand: list[torch.Tensor] = (),
           randn_like: list[torch.Tensor] = (), bernoulli: list[torch.Tensor] = ()) -> Iterator[None]:
    """Within the block, these torch samplers return the given tensors, in order (this thread only).

    Each replayed tensor is reshaped to the size the caller asks for (for the
    ``*_like`` and ``bernoulli`` forms, the shape of their tensor argument), so the
    reference may ask for (B, 1, 1, 1) where the student drew (B,). Draws from an
    explicit ``generator`` and draws beyond the given tensors use the real sampler.
    """
    _install()
    saved = getattr(_LOCAL, "queues", None)
    _LOCAL.queues = {"randn": list(randn), "rand": list(rand), "randn_like": list(randn_like),
                     "bernoulli": list(bernoulli)}
    try:
        yield
    finally:
        _LOCAL.queues = saved

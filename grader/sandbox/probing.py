"""What both sides of the trust boundary share: how a probe is declared, and helpers to write one.

A probe runs in the sandboxed worker: it calls a student function on inputs
rebuilt from a seed and returns plain float64 arrays. It is declared with its
output schema, next to its code::

    @probe("loss", outputs={
        "value": Out(ndim=1, max_size=1000),          # whatever the student returned, flattened
        "value_shape": Out(kind="shape", of="value"),
        "grad": Out(size=lambda args: (0, n_params(args))),
        "grad_ok": Out(kind="flag", size=1),
        "x_in*": Out(ndim=None, max_ndim=4, max_size=100_000, pattern=True),
    })
    def probe_loss(module, args): ...

The grader validates what comes back against that schema (:func:`validate`)
before any check reads it: the worker runs student code, so its output is
untrusted. This module imports only the standard library, numpy and torch, so
the sandbox may import it; the worker never imports anything else of the grader.
"""
from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

KINDS = ("real", "count", "flag", "shape")


@dataclass(frozen=True)
class Out:
    """One array (or family of arrays) a probe returns.

    Args:
        ndim: its exact rank; None allows any rank up to ``max_ndim``
        size: allowed sizes: an int, a tuple of ints, or a function of the probe's arguments
            returning either (e.g. the parameter count of the probe nets); None: any up to ``max_size``
        max_size: a cap on its number of elements
        max_ndim: a cap on its rank when ``ndim`` is None
        kind: ``real`` (any float; NaN and inf allowed, checks judge them), ``count`` (finite
            non-negative integers), ``flag`` (0 or 1), ``shape`` (finite non-negative integers,
            at most 8 of them, whose product is the size of the array named by ``of``)
        finite: a ``real`` array must hold only finite numbers
        of: for a ``shape``: the array it describes
        optional: may be absent (or a function of the probe's arguments saying when it may)
        pattern: the key is a glob (``g_in*``): any number of matching arrays, each of this layout
    """

    ndim: int | None = 1
    size: int | tuple[int, ...] | Callable[[dict], int | tuple[int, ...]] | None = None
    max_size: int = 1_000_000
    max_ndim: int = 6
    kind: str = "real"
    finite: bool = False
    of: str | None = None
    optional: bool | Callable[[dict], bool] = False
    pattern: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Out.kind must be one of {KINDS}, not {self.kind!r}")
        if (self.kind == "shape") != (self.of is not None):
            raise ValueError("a shape output names the array it describes (of=...), and only a shape does")


@dataclass(frozen=True)
class ProbeSpec:
    """A probe kind: its local name, its function and its output schema."""

    kind: str
    fn: Callable[[Any, dict], dict[str, np.ndarray]] = field(compare=False)
    outputs: dict[str, Out]

    def keys(self) -> list[str]:
        """The output keys (patterns included) this probe declares."""
        return list(self.outputs)


def probe(kind: str, *, outputs: dict[str, Out]) -> Callable:
    """Decorator: declare ``fn(module, args) -> {key: array}`` as probe kind ``kind`` with its schema.

    The engine finds decorated functions in an assignment's ``probes.py``; the
    kind is referred to in assignment.yaml as ``kind`` (or ``<assignment>.kind``
    from another assignment that ``uses`` this one).
    """
    for key, spec in outputs.items():
        if not isinstance(spec, Out):
            raise TypeError(f"probe {kind!r}: output {key!r} must be declared with Out(...)")
        if spec.of is not None and spec.of not in outputs:
            raise ValueError(f"probe {kind!r}: output {key!r} describes {spec.of!r}, which it does not declare")

    def deco(fn: Callable) -> Callable:
        fn.__probe__ = ProbeSpec(kind, fn, dict(outputs))
        return fn
    return deco


def specs_in(module: Any) -> dict[str, ProbeSpec]:
    """The probes a module declares, by kind."""
    out: dict[str, ProbeSpec] = {}
    for value in vars(module).values():
        spec = getattr(value, "__probe__", None)
        if getattr(value, "__module__", None) != module.__name__:
            continue   # imported from another module (a public check used by a hidden one)
        if isinstance(spec, ProbeSpec):
            if spec.kind in out:
                raise ValueError(f"{module.__name__} declares probe kind {spec.kind!r} twice")
            out[spec.kind] = spec
    return out


# --------------------------------------------------------------------------- validation (grader side)


def _sizes(spec: Out, args: dict) -> tuple[int, ...] | None:
    size = spec.size(args) if callable(spec.size) else spec.size
    if size is None:
        return None
    return (int(size),) if isinstance(size, int) else tuple(int(s) for s in size)


def _check(key: str, a: np.ndarray, spec: Out, args: dict) -> str | None:
    if spec.ndim is not None and a.ndim != spec.ndim:
        return f"{key} has rank {a.ndim}, expected {spec.ndim}"
    if a.ndim > spec.max_ndim or a.size > spec.max_size:
        return f"{key} is too large ({a.shape})"
    sizes = _sizes(spec, args)
    if sizes is not None and a.size not in sizes:
        return f"{key} has {a.size} entries, expected {' or '.join(map(str, sizes))}"
    if spec.kind in ("count", "flag", "shape"):
        if not np.all(np.isfinite(a)) or np.any(a < 0) or np.any(a != np.round(a)):
            return f"{key} holds something other than non-negative integers"
        if spec.kind == "flag" and np.any(a > 1):
            return f"{key} is not 0 or 1"
        if spec.kind == "shape" and a.size > 8:
            return f"{key} is not a shape"
    elif spec.finite and not np.all(np.isfinite(a)):
        return f"{key} holds NaN or infinite values"
    return None


def validate(outputs: dict[str, Out], arrays: dict[str, np.ndarray], args: dict) -> str | None:
    """None when ``arrays`` fit the schema, else what is wrong (for a "malformed results" message).

    Every key must be declared (exactly, or by a pattern); every declared key
    that is not optional must be there; shapes must describe their arrays.
    """
    exact = {k: s for k, s in outputs.items() if not s.pattern}
    patterns = {k: s for k, s in outputs.items() if s.pattern}
    for key, a in arrays.items():
        spec = exact.get(key) or next((s for p, s in patterns.items() if fnmatch.fnmatchcase(key, p)), None)
        if spec is None:
            return f"unexpected output {key!r}"
        problem = _check(key, a, spec, args)
        if problem:
            return problem
    for key, spec in exact.items():
        if key not in arrays:
            if not (spec.optional(args) if callable(spec.optional) else spec.optional):
                return f"{key} is missing"
            continue
        if spec.kind == "shape" and spec.of in arrays:
            if int(np.prod(arrays[key])) != arrays[spec.of].size:
                return f"{key} does not describe {spec.of}"
    return None


def declares(outputs: dict[str, Out], key: str) -> bool:
    """True when ``key`` (or, for a pattern such as ``g_in*``, that pattern) is in the schema."""
    return key in outputs or any(s.pattern and fnmatch.fnmatchcase(key, p) for p, s in outputs.items())


# --------------------------------------------------------------------------- helpers for probes (and checks)


def flat_grad(loss: Any, params: list) -> tuple[np.ndarray, int]:
    """(d loss / d params flattened into one float64 vector, 1 if loss reaches any of them else 0)."""
    import torch

    size = sum(p.numel() for p in params)
    if not loss.requires_grad:
        return np.zeros(size), 0
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    if all(g is None for g in grads):
        return np.zeros(size), 0
    flat = [torch.zeros(p.numel()) if g is None else g.reshape(-1) for p, g in zip(params, grads)]
    return torch.cat(flat).double().numpy(), 1


def seeded_init(gen: Any, *modules: Any) -> None:
    """Re-draw every Linear layer's weights from ``gen`` with PyTorch's default distribution,
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)): probe nets then never depend on the global RNG, which
    other grading threads of the parent process use at the same time."""
    import torch
    import torch.nn as nn

    with torch.no_grad():
        for module in modules:
            for layer in module.modules():
                if isinstance(layer, nn.Linear):
                    bound = 1.0 / layer.in_features ** 0.5
                    layer.weight.uniform_(-bound, bound, generator=gen)
                    if layer.bias is not None:
                        layer.bias.uniform_(-bound, bound, generator=gen)


class InputRecorder:
    """Records the inputs of every call of ``module``, however it is run.

    The module's ``forward`` is wrapped on the instance, so ``module(x)``,
    ``module.forward(x)`` and calls from inside containers (``nn.Sequential``,
    a parent module) all pass through it; arguments given by keyword are
    recorded in the order of ``forward``'s signature.
    """

    def __init__(self, module: Any, keep_outputs: bool = False) -> None:
        import inspect

        import torch

        self.calls: list[tuple] = []
        self.outputs: list = []       # each call's output, graph kept (with keep_outputs): for d loss / d output
        self._module, original = module, module.forward
        try:
            signature = inspect.signature(original)
        except (TypeError, ValueError):
            signature = None

        def forward(*args: Any, **kwargs: Any) -> Any:
            values = list(args)
            if kwargs and signature is not None:
                try:
                    values = list(signature.bind(*args, **kwargs).arguments.values())
                except TypeError:
                    values = list(args) + list(kwargs.values())
            self.calls.append(tuple(v.detach().clone() if isinstance(v, torch.Tensor) else torch.as_tensor(v)
                                    for v in values if v is not None))
            result = original(*args, **kwargs)
            if keep_outputs:
                self.outputs.append(result)
            return result

        module.forward = forward

    def remove(self) -> None:
        """Stop recording (the module's own forward is used again)."""
        self._module.__dict__.pop("forward", None)

    def output_grads(self, loss: Any, limit: int = 8) -> list:
        """d loss / d output of each of the first ``limit`` calls (None where the loss does not depend on it)."""
        import torch

        outs = [o for o in self.outputs[:limit]]
        usable = [i for i, o in enumerate(outs) if isinstance(o, torch.Tensor) and o.requires_grad]
        grads: list = [None] * len(outs)
        if usable and isinstance(loss, torch.Tensor) and loss.requires_grad and loss.numel() == 1:
            found = torch.autograd.grad(loss.reshape(()), [outs[i] for i in usable], retain_graph=True,
                                        allow_unused=True)
            for i, g in zip(usable, found):
                grads[i] = g
        return grads


class UpdateRecorder:
    """What each optimiser step really changed, while a student's training loop runs.

    Args:
        nets: name -> the parameters of one network (e.g. {"g": list(G.parameters()), ...})

    Per step it records which networks' parameter *values* changed (a step with
    a learning rate of 0 changes nothing, however often it runs), and, per
    network updated, whether the gradient it used held more than the last
    backward pass through that network (an earlier loss's gradient left in
    ``.grad``, e.g. the discriminator's loss in the generator's update). A
    network's last parameter is watched for backward passes: it receives a
    gradient in every backward pass through the network.

    Use as a context manager; read :attr:`steps` (frozenset of names changed ->
    count), :attr:`backward` (name -> passes), :attr:`mixed` (name -> updates
    with mixed gradients), :attr:`lrs` (name -> learning rates of the steps
    that changed it).
    """

    def __init__(self, nets: dict[str, list]) -> None:
        self.nets = {name: list(params) for name, params in nets.items()}
        self.steps: dict[frozenset, int] = {}
        self.backward = {name: 0 for name in self.nets}
        self.mixed = {name: 0 for name in self.nets}
        self.lrs: dict[str, list[float]] = {name: [] for name in self.nets}
        self._last: dict[str, Any] = {}
        self._before: dict[str, list] = {}
        self._handles: list = []

    def __enter__(self) -> UpdateRecorder:
        from torch.optim.optimizer import (
            register_optimizer_step_post_hook,
            register_optimizer_step_pre_hook,
        )

        for name, params in self.nets.items():
            self._handles.append(params[-1].register_hook(self._on_backward(name)))
        self._handles += [register_optimizer_step_pre_hook(self._pre), register_optimizer_step_post_hook(self._post)]
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()

    def _on_backward(self, name: str):
        def hook(grad: Any) -> None:
            self.backward[name] += 1
            self._last[name] = grad.detach().clone()
        return hook

    def _pre(self, optimizer: Any, _args: Any, _kwargs: Any) -> None:
        import torch

        owned = {id(p) for group in optimizer.param_groups for p in group["params"]}
        self._before = {name: [p.detach().clone() for p in params] for name, params in self.nets.items()}
        for name, params in self.nets.items():
            watched = params[-1]
            if id(watched) in owned and watched.grad is not None and name in self._last:
                if not torch.allclose(watched.grad, self._last[name], rtol=1e-5, atol=1e-8):
                    self.mixed[name] += 1

    def _post(self, optimizer: Any, _args: Any, _kwargs: Any) -> None:
        import torch

        changed = frozenset(name for name, params in self.nets.items()
                            if any(not torch.equal(p.detach(), b) for p, b in zip(params, self._before[name])))
        self.steps[changed] = self.steps.get(changed, 0) + 1
        lrs = {float(g.get("lr", -1)) for g in optimizer.param_groups}
        for name in changed:
            self.lrs[name] += sorted(lrs)

    def count(self, *names: str) -> int:
        """Steps that changed exactly the networks ``names`` (none: steps that changed nothing)."""
        return self.steps.get(frozenset(names), 0)


# --------------------------------------------------------------------------- the arrays a probe returns

ARRAYS_MAGIC = b"DGA1"
MAX_ARRAYS_HEADER = 1 << 20
MAX_NDIM = 6


def encode_arrays(arrays: dict[str, Any]) -> bytes:
    """A probe's arrays as bytes (worker side): ``DGA1``, the header's length (4 bytes), a JSON list
    of ``[name, shape]``, then every array's float64 values (little-endian, C order) in that order.
    Plain numbers and a JSON list of names and shapes: nothing in it can describe an object."""
    header, data = [], []
    for name, value in arrays.items():
        a = np.asarray(value, dtype="<f8")
        header.append([str(name), list(a.shape)])
        data.append(a.tobytes(order="C"))
    text = json.dumps(header).encode()
    return ARRAYS_MAGIC + len(text).to_bytes(4, "big") + text + b"".join(data)


def decode_arrays(payload: bytes, max_elements: int = 8_000_000) -> dict[str, np.ndarray]:
    """Untrusted bytes from :func:`encode_arrays` -> float64 arrays (grader side); ValueError for
    anything else: another format, a malformed header, a shape that is not a few non-negative
    ints, more than ``max_elements`` numbers, or data longer or shorter than the shapes say."""
    if payload[:4] != ARRAYS_MAGIC or len(payload) < 8:
        raise ValueError("not a probe's arrays")
    size = int.from_bytes(payload[4:8], "big")
    if size > MAX_ARRAYS_HEADER or len(payload) < 8 + size:
        raise ValueError("malformed arrays header")
    try:
        header = json.loads(payload[8:8 + size].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise ValueError("malformed arrays header") from err
    if not isinstance(header, list):
        raise ValueError("malformed arrays header")
    out: dict[str, np.ndarray] = {}
    offset, total = 8 + size, 0
    for item in header:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)
                and isinstance(item[1], list) and len(item[1]) <= MAX_NDIM
                and all(type(n) is int and 0 <= n <= max_elements for n in item[1])):
            raise ValueError(f"malformed array entry {str(item)[:80]}")
        name, shape = item
        if name in out or len(name) > 200:
            raise ValueError(f"array name {name[:80]!r} repeated or too long")
        count = 1
        for n in shape:
            count *= n
            if count > max_elements:
                break
        total += count
        if total > max_elements:
            raise ValueError("the returned arrays are too large")
        if offset + 8 * count > len(payload):
            raise ValueError("the arrays' data is shorter than their shapes")
        out[name] = np.frombuffer(payload, dtype="<f8", count=count, offset=offset).astype(np.float64).reshape(tuple(shape))
        offset += 8 * count
    if offset != len(payload):
        raise ValueError("the arrays' data is longer than their shapes")
    return out

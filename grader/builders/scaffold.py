"""``grader new NAME``: a new assignment folder that grades its own examples out of the box.

It writes a small but complete assignment (docs/authoring.md walks through it):
a student function ``log_normal(x, mu, logvar)`` (a diagonal Gaussian's log
density per example), its reference solution, the probe that calls it, a
public and a hidden check, a statement and two example submissions, then
regenerates starter/ (its folder is starter/{name}/). Edit the files from there.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..engine.config import ConfigError
from ..engine.paths import REPO_ROOT

FILES = {
    "assignments/{name}/assignment.yaml": '''# {name}: a new assignment made by `grader new`. Edit freely; keys are documented in
# docs/authoring.md (generated from grader/engine/config.py).
name: {name}
title: "{title}"
module: density.py
seed: 1
total_points: 10

parts:
  - name: "1"
    function: log_normal
    probe: log_density
    tests:
      - {{name: "one finite value per example, with a gradient for mu", check: shape, public: true}}
      - {{name: value and gradient, check: value, points: 10}}
''',
    "assignments/{name}/README.md": '''# Assignment `{name}`: {title}

Write `log_normal(x, mu, logvar)` in `density.py`: the log density of `x` under
a Gaussian with mean `mu` and diagonal variance `exp(logvar)`, one value per
example (the rows of `x`):

$$\\log \\mathcal{{N}}(x\\mid\\mu, \\mathrm{{diag}}(e^{{v}})) = -\\tfrac12\\sum_j \\Big(\\log 2\\pi + v_j + \\frac{{(x_j-\\mu_j)^2}}{{e^{{v_j}}}}\\Big).$$

```
grader check --assignment {name}        # the public checks
./make_submission.sh {name}             # writes {name}_submission.zip
```
''',
    "assignments/{name}/fixtures.py": '''"""Inputs of the {name} probe, rebuilt identically from a seed on both sides of the trust boundary."""
import torch

BATCH, DIM = 8, 4


def make_inputs(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x, mu, logvar, each (BATCH, DIM)."""
    gen = torch.Generator().manual_seed(seed)
    x, mu = torch.randn(BATCH, DIM, generator=gen), torch.randn(BATCH, DIM, generator=gen)
    logvar = torch.randn(BATCH, DIM, generator=gen)
    return x, mu, logvar
''',
    "assignments/{name}/probes.py": '''"""Probe of the {name} assignment: call the student's log_normal and record its value and gradient.

Runs in the sandbox: it may import torch, numpy, grader.sandbox.probing and this folder's fixtures.
"""
import numpy as np

from grader.sandbox.probing import Out, probe

from .fixtures import BATCH, DIM, make_inputs


@probe("log_density", outputs={{
    "value": Out(max_size=10_000),                      # what the function returned, flattened
    "value_shape": Out(kind="shape", of="value"),
    "grad_mu": Out(size=(0, BATCH * DIM)),              # d sum(value) / d mu; empty when there is none
}})
def log_density(module: object, args: dict) -> dict[str, np.ndarray]:
    x, mu, logvar = make_inputs(int(args["seed"]))
    mu.requires_grad_(True)
    value = getattr(module, args["function"])(x, mu, logvar)
    out = {{"value": value.detach().double().reshape(-1).numpy(),
           "value_shape": np.asarray(value.shape, dtype=np.float64)}}
    grad = None
    if value.requires_grad:
        import torch

        (grad,) = torch.autograd.grad(value.sum(), mu, allow_unused=True)
    out["grad_mu"] = np.zeros(0) if grad is None else grad.double().reshape(-1).numpy()
    return out
''',
    "assignments/{name}/checks.py": '''"""Public checks of the {name} assignment: properties any correct answer has (shipped to students)."""
import numpy as np

from grader.engine.checks import CheckContext, CheckResult, check

from .fixtures import BATCH


@check("shape", probe="log_density", reads=("value", "value_shape", "grad_mu"))
def shape(ctx: CheckContext) -> CheckResult:
    """One finite value per example, and a gradient that reaches mu."""
    value = ctx.outputs["value"]
    if value.size != BATCH:
        shape = tuple(int(s) for s in ctx.outputs["value_shape"])
        return CheckResult(False, f"log_normal returned shape {{shape}}; expected ({{BATCH}},)",
                           hint="sum over the last dimension only")
    if not np.all(np.isfinite(value)):
        return CheckResult(False, "log_normal returned NaN or infinite values")
    if ctx.outputs["grad_mu"].size == 0:
        return CheckResult(False, "the result sends no gradient to mu", hint="do not detach mu")
    return CheckResult(True, "one finite value per example")
''',
    "assignments/{name}/hidden.py": '''"""Hidden checks of the {name} assignment: the reference, on the same inputs (never shipped)."""
import torch

from grader.engine import reference
from grader.engine.checks import CheckContext, CheckResult, check
from grader.engine.compare import allclose, close_vector, compare

from .fixtures import make_inputs


@check("value", probe="log_density", reads=("value", "grad_mu"))
def value(ctx: CheckContext) -> CheckResult:
    """The values and their gradient w.r.t. mu equal the reference's."""
    x, mu, logvar = make_inputs(int(ctx.args["seed"]))
    mu.requires_grad_(True)
    expected = reference.load_module(ctx.assignment).log_normal(x, mu, logvar)
    (grad,) = torch.autograd.grad(expected.sum(), mu)
    got = ctx.outputs["value"]
    expected = expected.detach().double().reshape(-1).numpy()
    if not allclose(got, expected):
        hint = "the sign is flipped" if allclose(-got, expected) else ""
        return CheckResult(False, compare("log_normal", got, expected) or "values differ", hint=hint)
    if not close_vector(ctx.outputs["grad_mu"], grad.double().reshape(-1).numpy()):
        return CheckResult(False, "the values are right but their gradient w.r.t. mu is not")
    return CheckResult(True, "values and gradient match the reference")
''',
    "solutions/{name}/density.py": '''"""{title}."""
import math

import torch


def log_normal(x, mu, logvar):
    """Log density of x under N(mu, diag(exp(logvar))), one value per example.

    Args:
        x (torch.Tensor): points, shape (B, D)
        mu (torch.Tensor): means, shape (B, D)
        logvar (torch.Tensor): log variances, shape (B, D)

    Returns:
        torch.Tensor: log densities, shape (B,)
    """
    # BEGIN SOLUTION: sum, over the last dimension, the per-coordinate log density of the
    # Gaussian (the formula in the statement).
    return -0.5 * (math.log(2 * math.pi) + logvar + (x - mu) ** 2 / torch.exp(logvar)).sum(dim=-1)
    # END SOLUTION
''',
    "assignments/{name}/examples/correct/density.py": '''import math

import torch


def log_normal(x, mu, logvar):
    var = logvar.exp()
    return (-0.5 * math.log(2 * math.pi) - 0.5 * logvar - (x - mu).pow(2) / (2 * var)).sum(-1)
''',
    "assignments/{name}/examples/sign_flipped/density.py": '''import math

import torch


def log_normal(x, mu, logvar):
    return 0.5 * (math.log(2 * math.pi) + logvar + (x - mu) ** 2 / torch.exp(logvar)).sum(dim=-1)
''',
}


def create(name: str, root: Path = REPO_ROOT, title: str = "") -> list[str]:
    """Write the files of a new assignment ``name`` under the repository ``root``; return them.

    Raises:
        ConfigError: the name is not a lowercase identifier, or the assignment exists.
    """
    from . import starter

    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ConfigError(f"{name!r}: an assignment's name is a lowercase identifier (letters, digits, _)")
    if (root / "assignments" / name).exists():
        raise ConfigError(f"assignments/{name} exists already")
    title = title or f"{name}: the log density of a diagonal Gaussian"
    written = []
    for pattern, text in FILES.items():
        path = root / pattern.format(name=name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.format(name=name, title=title))
        written.append(path.relative_to(root).as_posix())
    starter.write(root=root)
    return written

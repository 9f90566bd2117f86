"""Helpers shared by the probes: record what reaches a network; flatten a loss's gradient."""
import numpy as np
import torch
import torch.nn as nn


class InputRecorder:
    """Forward pre-hook that stores the positional inputs of every call of a module."""

    def __init__(self, module: nn.Module):
        self.calls: list[tuple[torch.Tensor, ...]] = []
        self._handle = module.register_forward_pre_hook(self._hook)

    def _hook(self, _module: nn.Module, args: tuple) -> None:
        self.calls.append(tuple(
            a.detach().clone() if isinstance(a, torch.Tensor) else torch.as_tensor(a) for a in args
        ))

    def remove(self) -> None:
        self._handle.remove()


def flat_grad(loss: torch.Tensor, params: list[torch.Tensor]) -> tuple[np.ndarray, int]:
    """(d loss / d params flattened into one float64 vector, 1 if loss reaches any of them else 0)."""
    size = sum(p.numel() for p in params)
    if not loss.requires_grad:
        return np.zeros(size), 0
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    if all(g is None for g in grads):
        return np.zeros(size), 0
    flat = [torch.zeros(p.numel()) if g is None else g.reshape(-1) for p, g in zip(params, grads)]
    return torch.cat(flat).double().numpy(), 1


def seeded_init(gen: torch.Generator, *modules: nn.Module) -> None:
    """Re-draw every Linear layer's weights from ``gen`` with PyTorch's default distribution,
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)): probe nets then never depend on the global RNG, which
    other grading threads of the parent process use at the same time."""
    with torch.no_grad():
        for module in modules:
            for layer in module.modules():
                if isinstance(layer, nn.Linear):
                    bound = 1.0 / layer.in_features ** 0.5
                    layer.weight.uniform_(-bound, bound, generator=gen)
                    if layer.bias is not None:
                        layer.bias.uniform_(-bound, bound, generator=gen)

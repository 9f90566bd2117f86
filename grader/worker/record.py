"""Record what reaches a network: every forward call's inputs, detached copies."""
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

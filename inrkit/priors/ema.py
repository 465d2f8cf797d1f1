"""Exponential moving average of a network's weights, kept as buffers (so it is in state_dict).

The shadow weights are plain buffers, not a second copy of the module: optimisers, DDP and
parameter counts never see them. Sampling evaluates the live module with the shadow weights
through ``torch.func.functional_call``, so nothing is swapped in and out.
"""
from __future__ import annotations

import torch
from torch import nn


class EMA(nn.Module):
    """shadow ← d·shadow + (1 − d)·param after each optimiser step.

    With ``warmup`` the decay is min(decay, (1 + n)/(10 + n)) at update n (LDM's LitEma): a
    0.9999 average would otherwise still be the initial weights after a short run.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, warmup: bool = True):
        super().__init__()
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay must be in [0, 1], got {decay}")
        self.decay = float(decay)
        self.warmup = warmup
        self._names = {name: name.replace(".", "__") for name, p in model.named_parameters() if p.requires_grad}
        for name, key in self._names.items():
            self.register_buffer(key, model.get_parameter(name).detach().clone())
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    def current_decay(self) -> float:
        """The decay the next update will use."""
        n = int(self.num_updates) + 1
        return min(self.decay, (1 + n) / (10 + n)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = self.current_decay()
        self.num_updates += 1
        for name, key in self._names.items():
            shadow = getattr(self, key)
            shadow.lerp_(model.get_parameter(name).detach().to(shadow.dtype), 1.0 - decay)

    def params(self) -> dict[str, torch.Tensor]:
        """Parameter name → shadow tensor, ready for ``torch.func.functional_call``."""
        return {name: getattr(self, key) for name, key in self._names.items()}

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Overwrite the model's weights with the averages (e.g. to export an EMA-only model)."""
        for name, tensor in self.params().items():
            model.get_parameter(name).copy_(tensor)

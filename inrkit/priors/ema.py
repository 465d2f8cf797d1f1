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
        # The decay is computed on the device, so an update never waits for the host.
        n = (self.num_updates + 1).double()
        decay = torch.clamp((1 + n) / (10 + n), max=self.decay) if self.warmup else torch.full_like(n, self.decay)
        self.num_updates += 1
        shadows = [getattr(self, key) for key in self._names.values()]
        params = [model.get_parameter(name).detach().to(s.dtype) for name, s in zip(self._names, shadows)]
        torch._foreach_lerp_(shadows, params, (1.0 - decay).to(shadows[0].dtype) if shadows else 0.0)

    def params(self) -> dict[str, torch.Tensor]:
        """Parameter name → shadow tensor, ready for ``torch.func.functional_call``."""
        return {name: getattr(self, key) for name, key in self._names.items()}

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Overwrite the model's weights with the averages (e.g. to export an EMA-only model)."""
        for name, tensor in self.params().items():
            model.get_parameter(name).copy_(tensor)

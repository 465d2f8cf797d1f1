"""The contract of a latent prior: built as ``cls(config, latent_shape=(C, *grid))``."""
from __future__ import annotations

import torch
from torch import nn


class Prior(nn.Module):
    latent_shape: tuple[int, ...]

    def loss(self, z: torch.Tensor) -> torch.Tensor:
        """Training loss of the prior on a batch of latents (B, *latent_shape) → scalar."""
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, **kwargs) -> torch.Tensor:
        """n latents (n, *latent_shape); samplers take their own keyword arguments."""
        raise NotImplementedError

    def update_ema(self) -> None:
        """Called after each optimiser step of the prior; priors without EMA ignore it."""

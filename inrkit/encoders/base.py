"""The contract of an encoder: data grid → diagonal Gaussian q(z | X, Y) over a latent grid."""
from __future__ import annotations

import torch
from torch import nn


class Encoder(nn.Module):
    """Built as ``cls(config, in_channels=c, grid_shape=(...))``; ``latent_shape`` = (C, *latent grid).

    ``forward(x)`` takes (B, c, *grid) and returns ``(mean, logvar)``, each (B, *latent_shape).
    """

    latent_shape: tuple[int, ...]

    @staticmethod
    def reparameterize(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        # drawn in logical (NCHW) order, not randn_like's memory order: a channels-last encoder
        # (train.channels_last) gets the same noise as the NCHW one from the same generator state
        noise = torch.randn(mean.shape, dtype=mean.dtype, device=mean.device)
        return mean + noise * torch.exp(0.5 * logvar)

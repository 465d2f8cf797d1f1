"""A residual MLP ε-predictor over flattened latents: for vector latents and toy problems."""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..nn import timestep_embedding


class MLPDenoiser(nn.Module):
    """ε̂(x_t, t) for x_t of any shape (B, *latent_shape): flatten, residual MLP, reshape."""

    def __init__(self, *, latent_shape: Sequence[int], hidden: int = 256, layers: int = 3, dropout: float = 0.0):
        super().__init__()
        self.latent_shape = tuple(latent_shape)
        self.hidden = hidden
        width = math.prod(self.latent_shape)
        self.time_embedding = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.proj_in = nn.Linear(width, hidden)
        self.time_proj = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(layers))
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                          nn.Dropout(dropout), nn.Linear(hidden, hidden))
            for _ in range(layers)
        )
        self.proj_out = nn.Linear(hidden, width)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        temb = F.silu(self.time_embedding(timestep_embedding(t, self.hidden).to(x.dtype)))
        h = self.proj_in(x.reshape(x.shape[0], -1))
        for block, tproj in zip(self.blocks, self.time_proj):
            h = h + block(h + tproj(temb))
        return self.proj_out(h).reshape(x.shape)

"""Random Fourier features followed by a ReLU/LeakyReLU MLP (the GASP and VAMoH INR)."""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from ..registry import SEED_MAX, PartConfig
from ..registry import inrs as inr_registry
from .base import INR, batched_linear


class FourierFeatures(nn.Module):
    """x → [cos(2π x Bᵀ), sin(2π x Bᵀ)] with a fixed B ~ N(0, σ²) drawn from ``seed``.

    B is a *persistent* buffer: a saved model carries its frequencies, so it evaluates identically
    after loading even if the random-number stream or the seed default changes.
    """

    def __init__(self, in_dim: int, n_frequencies: int, sigma: float, seed: int):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("frequencies", torch.randn(n_frequencies, in_dim, generator=gen) * sigma)

    @property
    def out_dim(self) -> int:
        return 2 * self.frequencies.shape[0]

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        proj = 2 * math.pi * coords @ self.frequencies.to(coords.dtype).T
        return torch.cat([torch.cos(proj), torch.sin(proj)], dim=-1)


class FourierMLPConfig(PartConfig):
    in_dim: int = Field(2, ge=1)
    out_dim: int = Field(3, ge=1)
    n_frequencies: int = Field(64, ge=1, description="features = 2 × n_frequencies (cos and sin)")
    sigma: float = Field(2.0, gt=0, description="std of the Fourier frequencies")
    seed: int = Field(0, ge=0, le=SEED_MAX)
    width: int = Field(128, ge=1)
    # number of hidden layers: features → width (×depth) → out
    depth: int = Field(3, ge=1)
    activation: Literal["relu", "leaky_relu"] = "relu"
    negative_slope: float = Field(0.01, ge=0.0, description="leaky_relu: slope for x < 0 (GASP: 0.1)")
    final_activation: Literal["none", "tanh", "sigmoid"] = Field("none", description="GASP: tanh")


@inr_registry.register("fourier_mlp", config=FourierMLPConfig, description="random Fourier features + ReLU/LeakyReLU MLP (GASP, VAMoH)")
class FourierMLP(INR):
    def __init__(self, cfg: FourierMLPConfig):
        super().__init__()
        self.config = cfg
        self.in_dim, self.out_dim = cfg.in_dim, cfg.out_dim
        self.features = FourierFeatures(cfg.in_dim, cfg.n_frequencies, cfg.sigma, cfg.seed)
        dims = [self.features.out_dim] + [cfg.width] * cfg.depth + [cfg.out_dim]
        self.param_shapes = OrderedDict((f"l{i}", (dims[i] + 1, dims[i + 1])) for i in range(len(dims) - 1))

    def init_params(self) -> dict[str, torch.Tensor]:
        # nn.Linear's default: U(±1/√fan_in) for weights and bias
        params = {}
        for name, (fan_in1, fan_out) in self.param_shapes.items():
            bound = 1.0 / math.sqrt(fan_in1 - 1)
            params[name] = torch.empty(fan_in1, fan_out).uniform_(-bound, bound)
        return params

    def _act(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x) if self.config.activation == "relu" else F.leaky_relu(x, self.config.negative_slope)

    def forward(self, params: dict[str, torch.Tensor], coords: torch.Tensor) -> torch.Tensor:
        x = self.features(coords)
        names = list(self.param_shapes)
        for name in names[:-1]:
            x = self._act(batched_linear(x, params[name]))
        x = batched_linear(x, params[names[-1]])
        if self.config.final_activation == "tanh":
            return torch.tanh(x)
        return torch.sigmoid(x) if self.config.final_activation == "sigmoid" else x

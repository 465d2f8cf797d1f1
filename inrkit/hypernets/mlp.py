"""GASP-style MLP hypernetwork: flattened z → hidden layers → one linear head emitting every INR parameter."""
from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from ..inrs.base import INR
from ..registry import PartConfig
from ..registry import hypernets as hypernet_registry
from .base import Hypernet

Activation = Literal["relu", "leaky_relu", "gelu", "silu"]
ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU, "silu": nn.SiLU}


def mlp_layers(sizes: list[int], activation: str, negative_slope: float = 0.01) -> list[nn.Module]:
    """Linear + activation for each consecutive pair of ``sizes`` (the caller adds any head)."""
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        act = nn.LeakyReLU(negative_slope) if activation == "leaky_relu" else ACTIVATIONS[activation]()
        layers += [nn.Linear(a, b), act]
    return layers


class ParamMLP(nn.Module):
    """flat z → one INR's parameters, batched: name → (B, fan_in + 1, fan_out).

    The head starts at the INR family's own initialisation: its bias is one draw of
    ``inr.init_params()`` and its weights are small, scaled per layer by that layer's init spread.
    A head with default init would emit parameters far off the family's init (SIREN then diverges).
    """

    def __init__(self, in_features: int, hidden: list[int], activation: str, inr: INR, head_init_scale: float,
                 negative_slope: float = 0.01):
        super().__init__()
        self.shapes = dict(inr.param_shapes)
        self.trunk = nn.Sequential(*mlp_layers([in_features, *hidden], activation, negative_slope))
        width = hidden[-1] if hidden else in_features
        self.head = nn.Linear(width, sum(a * b for a, b in self.shapes.values()))
        init = inr.init_params()
        flat = torch.cat([init[n].flatten() for n in self.shapes])
        spread = torch.cat([init[n].std().expand(init[n].numel()) for n in self.shapes])
        with torch.no_grad():
            self.head.bias.copy_(flat)
            self.head.weight.normal_().mul_(spread[:, None] * (head_init_scale / math.sqrt(width)))

    def forward(self, z_flat: torch.Tensor) -> dict[str, torch.Tensor]:
        flat = self.head(self.trunk(z_flat))
        sizes = [a * b for a, b in self.shapes.values()]
        return {n: t.view(-1, *self.shapes[n]) for n, t in zip(self.shapes, flat.split(sizes, dim=1))}


class MLPHypernetConfig(PartConfig):
    hidden: list[int] = Field(default_factory=lambda: [256, 512])
    activation: Activation = "relu"
    negative_slope: float = Field(0.01, ge=0.0, description="leaky_relu: slope for x < 0 (GASP: 0.1)")
    head_init_scale: float = Field(0.1, ge=0.0, description="spread of the emitted params around the INR init, relative to it")


@hypernet_registry.register("mlp", config=MLPHypernetConfig, description="GASP-style MLP hypernetwork: z → every INR parameter")
class MLPHypernet(Hypernet):
    def __init__(self, cfg: MLPHypernetConfig, *, inr: INR, latent_shape: tuple[int, ...]):
        super().__init__()
        self.config, self.inr = cfg, inr
        self.latent_shape = tuple(int(s) for s in latent_shape)
        self.net = ParamMLP(math.prod(self.latent_shape), cfg.hidden, cfg.activation, inr, cfg.head_init_scale,
                             cfg.negative_slope)

    def forward(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        self.check_latent(z)
        return self.net(z.flatten(1))

    def parameter_report(self) -> dict[str, int]:
        trunk = sum(p.numel() for p in self.net.trunk.parameters())
        head = sum(p.numel() for p in self.net.head.parameters())
        return {"trunk": trunk, "head": head, "total": sum(p.numel() for p in self.parameters() if p.requires_grad)}

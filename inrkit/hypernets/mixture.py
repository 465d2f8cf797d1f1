"""VAMoH-style mixture of hypernetworks: K INRs per latent, mixed per coordinate.

Each of the K components is an MLP hypernetwork (as ``mlp``) emitting its own INR. A gating MLP
over (Fourier-encoded coordinate, a projection of z) gives K logits per coordinate, and the output
is the *soft* mixture Σ_k softmax(logits)_k · f_k(x).

Choice made here, versus VAMoH (Koyuncu et al. 2023): VAMoH treats the assignment as a latent
categorical variable, with a prior p(c | x, z) and a posterior q(c | x, y, z) over it and a KL
term in the ELBO. The soft mixture is deterministic given z, differentiable without relaxation,
and needs no change to the likelihood or to the training loop (the output is just one more
prediction); the price is that it models the mean of the mixture, not samples of assignments.

What else differs from VAMoH's released code (bkoyuncu/vamoh, ``run/configs/models/celebahq.yaml``,
``imagegym/models/vamoh_base.py``): K = 10 there (4 here by default); its prior over z is a
planar normalising flow of 80 layers (here the model's prior: Gaussian or diffusion); its
encoder is a point-conv network over (coordinate, value) sets (here the model's encoder); its
likelihood is a discretised logistic (here the model's likelihood); its hypernetworks are
64 → 256 → 256 → Φ with LeakyReLU(0.1) over a Fourier-feature INR of 128 frequencies and 64×3
hidden units. Its K hypernetworks are K separate modules (``nn.ModuleList([HyperNetwork(...)
for i in range(K)])``), each with its own trunk, so the parameter count grows K-fold; the
components here are separate in the same way (no shared trunk).
"""
from __future__ import annotations

import math

import torch
from pydantic import Field
from torch import nn

from ..inrs.base import INR
from ..inrs.fourier_mlp import FourierFeatures
from ..registry import SEED_MAX, PartConfig
from ..registry import hypernets as hypernet_registry
from .base import Hypernet
from .mlp import Activation, ParamMLP, mlp_layers


class MixtureConfig(PartConfig):
    n_components: int = Field(4, ge=1)
    hidden: list[int] = Field(default_factory=lambda: [256, 512])
    activation: Activation = "relu"
    head_init_scale: float = Field(0.1, ge=0.0)
    gate_hidden: list[int] = Field(default_factory=lambda: [128, 128])
    gate_frequencies: int = Field(32, ge=1, description="Fourier frequencies encoding the coordinate for the gate")
    gate_sigma: float = Field(1.0, gt=0)
    gate_seed: int = Field(0, ge=0, le=SEED_MAX)
    gate_latent_dim: int = Field(64, ge=1, description="size of the projection of z the gate sees")


@hypernet_registry.register("mixture", config=MixtureConfig, description="VAMoH-style mixture: K MLP hypernetworks, soft per-coordinate assignment")
class MixtureHypernet(Hypernet):
    def __init__(self, cfg: MixtureConfig, *, inr: INR, latent_shape: tuple[int, ...]):
        super().__init__()
        self.config, self.inr = cfg, inr
        self.latent_shape = tuple(int(s) for s in latent_shape)
        flat = math.prod(self.latent_shape)
        self.components = nn.ModuleList(
            ParamMLP(flat, cfg.hidden, cfg.activation, inr, cfg.head_init_scale) for _ in range(cfg.n_components)
        )
        self.gate_coords = FourierFeatures(inr.in_dim, cfg.gate_frequencies, cfg.gate_sigma, cfg.gate_seed)
        self.gate_latent = nn.Linear(flat, cfg.gate_latent_dim)
        sizes = [self.gate_coords.out_dim + cfg.gate_latent_dim, *cfg.gate_hidden]
        self.gate = nn.Sequential(*mlp_layers(sizes, cfg.activation), nn.Linear(sizes[-1], cfg.n_components))

    def forward(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Keys ``c{k}.{layer}`` (component k's INR params) and ``gate_latent`` (B, gate_latent_dim)."""
        self.check_latent(z)
        z = z.flatten(1)
        out = {"gate_latent": self.gate_latent(z)}
        for k, comp in enumerate(self.components):
            out.update({f"c{k}.{n}": p for n, p in comp(z).items()})
        return out

    def component_params(self, params: dict[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
        return {n: params[f"c{k}.{n}"] for n in self.inr.param_shapes}

    def assignment_logits(self, params: dict[str, torch.Tensor], coords: torch.Tensor) -> torch.Tensor:
        """(B, N, K) gate logits at coords (N, d) or (B, N, d)."""
        h = params["gate_latent"]
        feats = self.gate_coords(coords)
        if feats.dim() == 2:
            feats = feats.expand(h.shape[0], -1, -1)
        return self.gate(torch.cat([feats, h[:, None, :].expand(-1, feats.shape[1], -1)], dim=-1))

    def _mix(self, params: dict[str, torch.Tensor], coords: torch.Tensor) -> torch.Tensor:
        weights = self.assignment_logits(params, coords).softmax(dim=-1)  # (B, N, K)
        values = torch.stack([self.inr(self.component_params(params, k), coords) for k in range(len(self.components))], dim=-1)
        return (values * weights[:, :, None, :]).sum(dim=-1)

    def evaluate(self, params: dict[str, torch.Tensor], coords: torch.Tensor, chunk: int | None = 65536) -> torch.Tensor:
        n = coords.shape[-2]
        if chunk is None or n <= chunk:
            return self._mix(params, coords)
        return torch.cat([self._mix(params, coords[..., i : i + chunk, :]) for i in range(0, n, chunk)], dim=-2)

    def parameter_report(self) -> dict[str, int]:
        comps = sum(p.numel() for p in self.components.parameters())
        gate = sum(p.numel() for p in self.gate.parameters()) + sum(p.numel() for p in self.gate_latent.parameters())
        return {"components": comps, "gate": gate, "total": sum(p.numel() for p in self.parameters() if p.requires_grad)}

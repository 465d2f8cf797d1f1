"""Functa-style modulations: one shared INR whose hidden layers are shifted (and scaled) per sample.

Every item shares the base weights W, b of one INR (learned); a latent z gives each hidden layer
a shift s (and, with ``modulate: scale_shift``, a scale γ), so that a SIREN layer computes
``sin(ω0 (γ ⊙ (W h + b) + s))`` (Dupont et al. 2022, "From data to functa"; their ``modulate_scale``
and ``modulate_shift``). The output layer is not modulated.

The modulations come from z by one linear map over the flattened latent (``mapping: linear``,
Functa's LatentToModulation), or, for a latent grid (C, h, w[, t]), by a small network per layer
(``mapping: conv``: a 3×3 convolution, SiLU, then a linear map of the flattened features), which
keeps the map local before it is mixed. Both maps start at zero: the untrained hypernet emits the
base INR, at the family's own initialisation, for every z.

A FiLM modulation is exactly a per-sample change of the layer's parameters, W' = W·diag(γ) and
b' = γ ⊙ b + s, so ``forward`` returns ordinary batched INR parameters (the ``param_shapes`` of
the family) and decoding, chunked evaluation and any INR family work unchanged.

Not here: Spatial Functa's *per-coordinate* modulations (the latent grid interpolated at each
coordinate), which need the domain's map from coordinates to latent-grid positions.
"""
from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from ..errors import ConfigError
from ..inrs.base import INR
from ..registry import PartConfig
from ..registry import hypernets as hypernet_registry
from .base import Hypernet


class ModulationConfig(PartConfig):
    mapping: Literal["linear", "conv"] = Field(
        "linear", description="z → modulations: one linear map (Functa), or a small conv network per layer (latent grids)")
    modulate: Literal["shift", "scale_shift"] = Field("shift", description="shift only (Functa's default) or scale and shift")
    conv_channels: int = Field(32, ge=1, description="conv mapping: channels of each layer's convolution")
    learn_base: bool = Field(True, description="train the shared INR's weights (False: keep them at their initialisation)")


class ConvModulation(nn.Module):
    """Latent grid (B, C, *grid) → (B, out): ConvNd 3×3(×3), SiLU, flatten, linear (zero-initialised)."""

    def __init__(self, latent_shape: tuple[int, ...], channels: int, out: int):
        super().__init__()
        c, *grid = latent_shape
        conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}.get(len(grid))
        if conv is None:
            raise ConfigError(f"hypernets/modulation: mapping 'conv' needs a latent grid (C, h[, w[, t]]), got {latent_shape}")
        self.conv = conv(c, channels, 3, padding=1)
        self.act = nn.SiLU()
        self.out = nn.Linear(channels * math.prod(grid), out)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.out(self.act(self.conv(z)).flatten(1))


@hypernet_registry.register("modulation", config=ModulationConfig,
                            description="Functa-style: one shared INR, per-sample shifts (and scales) of its hidden layers")
class ModulationHypernet(Hypernet):
    def __init__(self, cfg: ModulationConfig, *, inr: INR, latent_shape: tuple[int, ...]):
        super().__init__()
        self.config, self.inr = cfg, inr
        self.latent_shape = tuple(int(s) for s in latent_shape)
        if not self.latent_shape or any(s < 1 for s in self.latent_shape):
            raise ConfigError(f"hypernets/modulation: bad latent_shape {self.latent_shape}")
        init = inr.init_params()
        names = list(inr.param_shapes)
        self.base_weights = nn.ParameterDict({n: nn.Parameter(init[n].clone(), requires_grad=cfg.learn_base) for n in names})
        self.modulated = names[:-1]  # the hidden layers; the output layer stays shared
        per = 2 if cfg.modulate == "scale_shift" else 1
        self.sizes = {n: per * inr.param_shapes[n][1] for n in self.modulated}
        if cfg.mapping == "linear":
            self.mapping = nn.Linear(math.prod(self.latent_shape), sum(self.sizes.values()))
            nn.init.zeros_(self.mapping.weight)
            nn.init.zeros_(self.mapping.bias)
        else:
            self.mapping = nn.ModuleDict({n: ConvModulation(self.latent_shape, cfg.conv_channels, k) for n, k in self.sizes.items()})

    @property
    def n_modulations(self) -> int:
        return sum(self.sizes.values())

    def modulations(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Layer name → (B, fan_out) shifts, or (B, 2·fan_out) scales-minus-one then shifts."""
        self.check_latent(z)
        if isinstance(self.mapping, nn.Linear):
            flat = self.mapping(z.flatten(1))
            return dict(zip(self.sizes, flat.split(list(self.sizes.values()), dim=1)))
        return {n: net(z) for n, net in self.mapping.items()}

    def forward(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        mods = self.modulations(z)
        b = z.shape[0]
        params = {}
        for name, wb in self.base_weights.items():
            if name not in mods:
                params[name] = wb.expand(b, -1, -1)
                continue
            w, bias = wb[:-1], wb[-1:]
            m = mods[name][:, None, :]  # (B, 1, fan_out)
            if self.config.modulate == "scale_shift":
                scale, shift = m.chunk(2, dim=-1)
                scale = 1 + scale
                params[name] = torch.cat([w * scale, bias * scale + shift], dim=1)
            else:
                params[name] = torch.cat([w.expand(b, -1, -1), bias + m], dim=1)
        return params

    def parameter_report(self) -> dict[str, int]:
        def count(ps) -> int:
            return sum(p.numel() for p in ps if p.requires_grad)

        return {"base_weights": count(self.base_weights.parameters()), "mapping": count(self.mapping.parameters()),
                "modulations_per_item": self.n_modulations, "total": count(self.parameters())}

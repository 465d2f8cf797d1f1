"""SIREN (Sitzmann et al. 2020): sine activations with the ω0-aware initialisation."""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Literal

import torch
from pydantic import Field, field_validator

from ..registry import RUNTIME, PartConfig
from ..registry import inrs as inr_registry
from . import fused_sine
from .base import INR, batched_linear

FINAL_ACTIVATIONS = {"none": lambda x: x, "sigmoid": torch.sigmoid, "tanh": torch.tanh}


class SirenConfig(PartConfig):
    in_dim: int = Field(2, ge=1)
    out_dim: int = Field(3, ge=1)
    width: int = Field(256, ge=1)
    # number of hidden (sine) layers; "2→256×4→3" is depth 4: four sine layers, then a linear output
    depth: int = Field(4, ge=1)
    w0: float = Field(30.0, gt=0)
    w0_initial: float = Field(30.0, gt=0)
    final_activation: Literal["none", "sigmoid", "tanh"] = "none"
    bias_init: Literal["uniform", "zero"] = Field(
        "uniform", description="uniform: nn.Linear's random phases (the original SIREN); zero: the LDMI code's")
    out_offset: float = Field(0.0, description="constant added to the output (the LDMI code's out_bias, 0.5)")
    kernel: Literal["auto", "torch", "triton"] = Field(
        "auto", json_schema_extra=RUNTIME, description="auto/triton = the fused Triton sine layers where CUDA and Triton are (faster to"
                            " train and render: benchmarks/RESULTS.md), else PyTorch; torch = always PyTorch")
    matmul_precision: Literal["fp32", "tf32", "tf32x3", "bf16", "bf16x3"] = Field(
        "bf16x3", description="tensor-core scheme of the fused kernel (the PyTorch path is always fp32); "
                              "bf16x3/tf32x3 split each operand in two and stay near fp32 (benchmarks/RESULTS.md)")
    backward_precision: Literal["same", "fp32", "tf32", "tf32x3", "bf16", "bf16x3"] = Field(
        "same", description="scheme of the fused kernel's backward products (same: matmul_precision); they feed"
                            " no phase (the sines' derivatives come from the stored fp32 pre-activations), so bf16"
                            " gives the gradients autocast's error, about 1e-3 (benchmarks/RESULTS.md)")
    tiles: dict[Literal["forward", "grad_input", "grad_weight"], dict[str, int]] = Field(
        default_factory=dict, json_schema_extra=RUNTIME, description="fused kernel tiles per kernel, replacing the built-in rule: block caps"
        " (forward BN/BM/BK, grad_input BN/BK/BM, grad_weight BK/BM/BN; powers of two >= 16), num_warps, num_stages;"
        " e.g. from benchmarks/gpu_bench.py --sections tiles (docs/gpu.md); a speed setting, results are the same")

    @field_validator("tiles")
    @classmethod
    def _check_tiles(cls, tiles):
        fused_sine.encode_tiles(tiles)  # raises ValueError naming the bad setting
        return tiles


@inr_registry.register("siren", config=SirenConfig, description="SIREN: sine MLP, ω0 = 30, SIREN initialisation")
class Siren(INR):
    """y = W_out · sin(ω0 (W_{L-1} · … sin(ω0_initial (W_0 x + b_0)) …) + b) + b_out (+ out_offset).

    ω0 multiplies the pre-activation (weights and bias alike), and the hidden-layer init divides
    by the ω0 of the layer's own sine so that ω0 (W x + b) stays of unit scale at any depth.
    """

    def __init__(self, cfg: SirenConfig):
        super().__init__()
        self.config = cfg
        self._tiles_of = (cfg, fused_sine.encode_tiles(cfg.tiles))
        self.in_dim, self.out_dim = cfg.in_dim, cfg.out_dim
        dims = [cfg.in_dim] + [cfg.width] * cfg.depth + [cfg.out_dim]
        self.param_shapes = OrderedDict((f"l{i}", (dims[i] + 1, dims[i + 1])) for i in range(len(dims) - 1))

    def init_bounds(self) -> dict[str, float]:
        """Half-width of the uniform weight init of each layer (what the tests pin)."""
        out = {}
        for i, (name, (fan_in1, _)) in enumerate(self.param_shapes.items()):
            fan_in = fan_in1 - 1
            out[name] = 1.0 / fan_in if i == 0 else math.sqrt(6.0 / fan_in) / self.config.w0
        return out

    def init_params(self) -> dict[str, torch.Tensor]:
        bounds = self.init_bounds()
        params = {}
        for name, (fan_in1, fan_out) in self.param_shapes.items():
            w = torch.empty(fan_in1 - 1, fan_out).uniform_(-bounds[name], bounds[name])
            # biases as nn.Linear draws them (the original SIREN keeps that default): random phases
            b = torch.empty(1, fan_out).uniform_(-1, 1) / math.sqrt(fan_in1 - 1)
            if self.config.bias_init == "zero":
                b.zero_()
            params[name] = torch.cat([w, b], dim=0)
        return params

    def _tile_string(self) -> str:
        """``config.tiles`` as the fused operators take it, kept for the config object it came from
        (a config replaced later, e.g. by ``model_copy``, is encoded again)."""
        if self._tiles_of[0] is not self.config:
            self._tiles_of = (self.config, fused_sine.encode_tiles(self.config.tiles))
        return self._tiles_of[1]

    def _grad_precision(self) -> str:
        p = self.config.backward_precision
        return self.config.matmul_precision if p == "same" else p

    def uses_fused_kernel(self, device: torch.device) -> bool:
        """Whether ``forward`` takes the fused Triton path for tensors on ``device``.

        Where it cannot run (no CUDA, no Triton) ``auto`` and ``triton`` fall back to PyTorch:
        the same function, only slower.
        """
        return self.config.kernel != "torch" and fused_sine.available(device)

    def forward(self, params: dict[str, torch.Tensor], coords: torch.Tensor) -> torch.Tensor:
        names = list(self.param_shapes)
        if self.uses_fused_kernel(coords.device):
            x = fused_sine.siren_stack(coords, [params[n] for n in names], self.config.w0_initial, self.config.w0,
                                       self.config.matmul_precision, self._tile_string(), self._grad_precision())
        else:
            x = coords
            for i, name in enumerate(names[:-1]):
                w0 = self.config.w0_initial if i == 0 else self.config.w0
                x = torch.sin(w0 * batched_linear(x, params[name]))
            x = batched_linear(x, params[names[-1]])
        if self.config.out_offset:
            x = x + self.config.out_offset
        return FINAL_ACTIVATIONS[self.config.final_activation](x)

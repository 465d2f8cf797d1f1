"""The normalizing-flow prior: an invertible map from the flattened latent to N(0, I).

Trained by maximum likelihood on the frozen encoder's latents (stage 2): the loss is −log p(z)
per latent element, with log p(z) = log N(f(z̃); 0, I) + log|det ∂f/∂z̃| + D·log(scale_factor)
on the standardised latent z̃ = scale_factor · z (as the diffusion prior standardises). Sampled by
the inverse pass: ε ~ N(0, T²I) → f⁻¹(ε) → z. EMA weights as the diffusion prior keeps them.

Two families: ``coupling`` (RealNVP affine couplings, inverted in closed form) and ``planar``
(Rezende & Mohamed's planar layers, as VAMoH's prior uses with 80 of them; inverted by bisection).
Any latent shape works: the flow sees the latent flattened to D = prod(latent_shape).
"""
from __future__ import annotations

import math
from typing import Literal

import pydantic
import torch
from torch.func import functional_call

from ..errors import ConfigError, DataError
from ..registry import PartConfig, priors
from .base import ScaledPrior
from .samplers import randn
from .ema import EMA
from .flow_layers import AffineCoupling, Flow, Planar, coupling_masks

LOG_2PI = math.log(2 * math.pi)


class FlowConfig(PartConfig):
    flow: Literal["coupling", "planar"] = pydantic.Field("coupling", description="affine couplings (RealNVP) or planar layers")
    n_layers: int = pydantic.Field(8, ge=1, description="invertible layers after the elementwise affine one (VAMoH: 80 planar)")
    hidden: int = pydantic.Field(256, ge=1, description="coupling: width of each conditioner MLP")
    conditioner_layers: int = pydantic.Field(2, ge=1, description="coupling: hidden layers of each conditioner")
    scale_bound: float = pydantic.Field(3.0, gt=0.0, description="coupling: |log-scale| < bound (tanh-bounded)")
    planar_iterations: int = pydantic.Field(60, ge=1, description="planar: bisection steps of each inverse")
    temperature: float = pydantic.Field(1.0, gt=0.0, description="sampling: ε ~ N(0, T²I)")
    ema_decay: float = pydantic.Field(0.999, ge=0.0, le=1.0)
    ema_warmup: bool = pydantic.Field(True, description="decay min(ema_decay, (1+n)/(10+n)) at update n")


@priors.register("flow", config=FlowConfig,
                 description="normalizing flow (affine coupling or planar) over the flat latent; max. likelihood, EMA")
class FlowPrior(ScaledPrior):
    def __init__(self, config: FlowConfig, *, latent_shape):
        super().__init__()
        self.config = cfg = config
        self.latent_shape = tuple(int(n) for n in latent_shape)
        if not self.latent_shape or any(n < 1 for n in self.latent_shape):
            raise ConfigError(f"priors/flow: bad latent_shape {self.latent_shape}")
        self.dim = dim = math.prod(self.latent_shape)
        if cfg.flow == "coupling":
            layers = [AffineCoupling(dim, m, cfg.hidden, cfg.conditioner_layers, cfg.scale_bound)
                      for m in coupling_masks(dim, cfg.n_layers)]
        else:
            layers = [Planar(dim, cfg.planar_iterations) for _ in range(cfg.n_layers)]
        self.flow = Flow(dim, layers)
        self.ema = EMA(self.flow, cfg.ema_decay, cfg.ema_warmup)
        self._register_scale()

    def _flat(self, z: torch.Tensor) -> torch.Tensor:
        if tuple(z.shape[1:]) != self.latent_shape:
            raise DataError(f"priors/flow: latents of shape {tuple(z.shape)} do not match"
                            f" (B, {', '.join(map(str, self.latent_shape))})")
        return z.flatten(1).float() * self.scale_factor

    def _run(self, x: torch.Tensor, inverse: bool, use_ema: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The flow with live weights, or with the EMA weights once they have had an update."""
        if use_ema and int(self.ema.num_updates) > 0:
            return functional_call(self.flow, self.ema.params(), (x,), {"inverse": inverse})
        return self.flow(x, inverse=inverse)

    def log_prob(self, z: torch.Tensor, use_ema: bool = False) -> torch.Tensor:
        """log p(z) per item (B,), in nats, of latents in the encoder's own (unscaled) space.

        Always in fp32, also under bf16 autocast: log-determinants summed over hundreds of
        dimensions lose their digits in bf16's 8-bit mantissa."""
        x = self._flat(z)
        with torch.autocast(device_type=x.device.type, enabled=False):
            eps, logdet = self._run(x, inverse=False, use_ema=use_ema)
            base = -0.5 * (eps.float().square().sum(-1) + self.dim * LOG_2PI)
            return base + logdet.float() + self.dim * torch.log(self.scale_factor)

    def loss(self, z: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood per latent element (nats), averaged over the batch."""
        return -self.log_prob(z).mean() / self.dim

    def update_ema(self) -> None:
        self.ema.update(self.flow)

    def use_ema_weights(self) -> None:
        self.ema.copy_to(self.flow)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, temperature: float | None = None,
               use_ema: bool = True, **kwargs) -> torch.Tensor:
        """n latents (n, *latent_shape) by the inverse pass; diffusion's sampler keywords (steps,
        eta, ...) are accepted and ignored, so every prior is sampled alike."""
        t = self.config.temperature if temperature is None else float(temperature)
        eps = randn((n, self.dim), generator, self.scale_factor.device) * t
        was = self.flow.training
        self.flow.eval()
        try:
            with torch.autocast(device_type=eps.device.type, enabled=False):
                x, _ = self._run(eps, inverse=True, use_ema=use_ema)
        finally:
            self.flow.train(was)
        return (x / self.scale_factor).view(n, *self.latent_shape)

"""The latent diffusion prior: DDPM training (ε-prediction), DDIM / DDPM sampling, EMA weights.

Latents are standardised by a ``scale_factor`` buffer, as LDM does (``ScaledPrior.set_scale``);
``loss`` and the samplers work on scaled latents and ``sample`` returns unscaled ones, so the
prior's input and output live in the encoder's own latent space.
"""
from __future__ import annotations

from typing import Literal

import pydantic
import torch
import torch.nn.functional as F
from torch.func import functional_call

from ..registry import PartConfig, priors
from ..errors import ConfigError, DataError
from ..nn import ChannelMult
from .base import ScaledPrior
from .samplers import Callback, ddim_sample, ddpm_sample, randn
from .ema import EMA
from .guided import dps_ddim
from .mlp_denoiser import MLPDenoiser
from .schedule import NoiseSchedule
from .unet import UNet


class DiffusionConfig(PartConfig):
    num_timesteps: int = pydantic.Field(1000, ge=2)
    schedule: Literal["linear", "cosine"] = "linear"
    beta_start: float = pydantic.Field(1.5e-3, gt=0.0, lt=1.0, description="linear schedule: β_1 (√ interpolated)")
    beta_end: float = pydantic.Field(1.95e-2, gt=0.0, lt=1.0, description="linear schedule: β_T")
    denoiser: Literal["unet", "mlp"] = pydantic.Field("unet", description="unet over latent grids; mlp over flat latents")
    model_channels: int = pydantic.Field(64, ge=1, description="unet: channels of the first level")
    channel_mult: ChannelMult = pydantic.Field([1, 2], min_length=1, description="unet: multiplier per level")
    num_res_blocks: int = pydantic.Field(1, ge=1, description="unet: ResnetBlocks per level")
    attention: bool = pydantic.Field(True, description="unet: self-attention at the lowest resolution")
    num_head_channels: int = pydantic.Field(32, ge=1, description="unet: channels per attention head")
    attention_resolutions: list[int] | None = pydantic.Field(
        None, description="unet: downsampling factors with attention, as LDM's (e.g. [8, 4, 2]); null = the lowest level")
    mlp_hidden: int = pydantic.Field(256, ge=1, description="mlp: width")
    mlp_layers: int = pydantic.Field(3, ge=1, description="mlp: residual blocks")
    dropout: float = pydantic.Field(0.0, ge=0.0, lt=1.0)
    ema_decay: float = pydantic.Field(0.9999, ge=0.0, le=1.0)
    ema_warmup: bool = pydantic.Field(True, description="decay min(ema_decay, (1+n)/(10+n)) at update n")
    sampler: Literal["ddim", "ddpm"] = "ddim"
    steps: int = pydantic.Field(50, ge=1, description="ddim steps")
    eta: float = pydantic.Field(0.0, ge=0.0, description="ddim: 0 deterministic, 1 with full steps = ddpm")
    spacing: Literal["leading", "trailing", "linspace", "uniform"] = pydantic.Field(
        "trailing", description="ddim timestep spacing; trailing starts at t = T-1; uniform is CompVis' (LDM's)")


@priors.register("diffusion", config=DiffusionConfig,
                          description="DDPM latent diffusion (eps-prediction, UNet, EMA), DDIM/DDPM sampling")
class DiffusionPrior(ScaledPrior):
    guidance_method = "dps-ddim"

    def __init__(self, config: DiffusionConfig, *, latent_shape):
        super().__init__()
        self.config = cfg = config
        self.latent_shape = tuple(int(n) for n in latent_shape)
        if not self.latent_shape or any(n < 1 for n in self.latent_shape):
            raise ConfigError(f"priors/diffusion: bad latent_shape {self.latent_shape}")
        if cfg.denoiser == "unet":
            if len(self.latent_shape) not in (3, 4):
                raise ConfigError(f"priors/diffusion: the unet denoiser needs a latent grid (C, h, w[, t]),"
                                  f" got {self.latent_shape}; use denoiser: mlp for flat latents")
            self.denoiser = UNet(dims=len(self.latent_shape) - 1, channels=self.latent_shape[0],
                                 model_channels=cfg.model_channels, channel_mult=cfg.channel_mult,
                                 num_res_blocks=cfg.num_res_blocks, attention=cfg.attention,
                                 num_head_channels=cfg.num_head_channels, dropout=cfg.dropout,
                                 attention_resolutions=cfg.attention_resolutions)
        else:
            self.denoiser = MLPDenoiser(latent_shape=self.latent_shape, hidden=cfg.mlp_hidden,
                                        layers=cfg.mlp_layers, dropout=cfg.dropout)
        self.schedule = NoiseSchedule(cfg.num_timesteps, cfg.schedule, cfg.beta_start, cfg.beta_end)
        self.ema = EMA(self.denoiser, cfg.ema_decay, cfg.ema_warmup)
        self._register_scale()

    # -- training ----------------------------------------------------------------------
    def _check(self, z: torch.Tensor) -> None:
        if tuple(z.shape[1:]) != self.latent_shape:
            raise DataError(f"priors/diffusion: latents of shape {tuple(z.shape)} do not match"
                            f" (B, {', '.join(map(str, self.latent_shape))})")

    def loss(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """E_{t ~ U{0..T-1}, ε} ‖ε̂(x_t, t) − ε‖² on scaled latents (eq. 7), a scalar."""
        self._check(z)
        x0 = z.float() * self.scale_factor
        t = torch.randint(0, self.schedule.num_timesteps, (x0.shape[0],), generator=generator,
                          device=generator.device if generator is not None else x0.device).to(x0.device)
        noise = randn(x0.shape, generator, x0.device)
        eps = self.denoiser(self.schedule.add_noise(x0, noise, t), t)
        return F.mse_loss(eps.float(), noise)

    def update_ema(self) -> None:
        self.ema.update(self.denoiser)

    def use_ema_weights(self) -> None:
        self.ema.copy_to(self.denoiser)

    # -- sampling ----------------------------------------------------------------------
    def eps(self, x_t: torch.Tensor, t: torch.Tensor, use_ema: bool = True) -> torch.Tensor:
        """ε̂ on scaled latents. EMA weights are used only once they have had an update:
        before any, they are the initial weights and would sample noise."""
        if use_ema and int(self.ema.num_updates) > 0:
            return functional_call(self.denoiser, self.ema.params(), (x_t, t))
        return self.denoiser(x_t, t)

    def eps_function(self, use_ema: bool = True, compile: bool = False):
        """ε̂(x_t, t) for a whole sampling run: the EMA-or-live choice is read once (not per step),
        and with ``compile`` the denoiser runs through ``torch.compile`` (on CUDA about 1.5×
        faster DDIM after a one-off compilation: benchmarks/RESULTS.md)."""
        params = self.ema.params() if use_ema and int(self.ema.num_updates) > 0 else None
        denoiser = self.denoiser

        def eps(x, t):
            return functional_call(denoiser, params, (x, t)) if params is not None else denoiser(x, t)

        return torch.compile(eps) if compile else eps

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, steps: int | None = None,
               eta: float | None = None, use_ema: bool = True, sampler: str | None = None,
               spacing: str | None = None, x_T: torch.Tensor | None = None,
               callback: Callback | None = None, compile: bool = False) -> torch.Tensor:
        """n unscaled latents (n, *latent_shape). ``None`` arguments take the config's values.

        ``callback(i, t, x)`` sees the scaled latent after each step and may return a replacement
        (the hook for inpainting-style conditioning); ``x_T`` fixes the starting noise;
        ``compile`` compiles the denoiser for this run (see :meth:`eps_function`).
        """
        cfg = self.config
        sampler = sampler or cfg.sampler
        device = self.scale_factor.device
        was_training = self.denoiser.training
        self.denoiser.eval()
        try:
            eps_fn = self.eps_function(use_ema, compile)

            shape = (n, *self.latent_shape)
            if sampler == "ddim":
                x = ddim_sample(eps_fn, self.schedule, shape, steps=steps or cfg.steps,
                                eta=cfg.eta if eta is None else eta, spacing=spacing or cfg.spacing,
                                generator=generator, device=device, x_T=x_T, callback=callback)
            elif sampler == "ddpm":
                x = ddpm_sample(eps_fn, self.schedule, shape, generator=generator, device=device,
                                x_T=x_T, callback=callback)
            else:
                raise ConfigError(f"priors/diffusion: unknown sampler '{sampler}'; known: ddim, ddpm")
        finally:
            self.denoiser.train(was_training)
        return x / self.scale_factor


    def guided_sample(self, noise: torch.Tensor, loss, *, steps: int, guidance: float, use_ema: bool = True,
                      clip: float | None = None) -> torch.Tensor:
        """DDIM (η = 0) from ``noise`` with DPS reconstruction guidance: see :func:`inrkit.priors.guided.dps_ddim`."""
        was = self.denoiser.training
        self.denoiser.eval()
        try:
            return dps_ddim(self, noise, loss, steps, guidance, use_ema=use_ema, clip=clip)
        finally:
            self.denoiser.train(was)

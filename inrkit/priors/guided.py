"""Sampling a latent prior conditioned on observations, for the priors that can be guided.

``dps_ddim``: DDIM (η = 0) on the diffusion prior's scaled latents with reconstruction guidance
after each step, as DPS (Chung et al. 2023): predict ẑ0 from ε̂(x_t, t), measure the misfit of
its decode to the observations, and step x_t against the misfit's gradient.
``optimise_latents``: for a prior with a density but no sampler to steer (the standard normal),
a MAP estimate from the starting noise, minimising guidance·misfit(z) + ½‖z‖².
Neither knows what is observed: the caller's ``loss(z)`` decodes and compares.
"""
from __future__ import annotations

import math

import torch

from ..errors import ConfigError
from .base import GuideLoss
from .samplers import ddim_timesteps, previous_timestep


def _check(steps: int, guidance: float, clip: float | None) -> None:
    if steps < 1:
        raise ConfigError(f"guided sampling: steps must be >= 1, got {steps}")
    if not guidance >= 0 or not math.isfinite(guidance):
        raise ConfigError(f"guided sampling: guidance must be a finite number >= 0, got {guidance}")
    if clip is not None and (not clip > 0 or not math.isfinite(clip)):
        raise ConfigError(f"guided sampling: clip must be a finite number > 0, got {clip}")


def dps_ddim(prior, noise: torch.Tensor, loss: GuideLoss, steps: int, guidance: float, use_ema: bool = True,
             clip: float | None = None, spacing: str | None = None) -> torch.Tensor:
    """Unscaled latents from DDIM started at ``noise``; each step is followed by −guidance·∇_{x_t} loss(ẑ0)."""
    _check(steps, guidance, clip)
    schedule = prior.schedule
    scale = prior.scale_factor.float()
    spacing = spacing or prior.config.spacing
    ts = ddim_timesteps(schedule.num_timesteps, steps, spacing)
    x = noise.to(scale.device, torch.float32)
    for k, t in enumerate(ts):
        a, a_prev = schedule.alpha_bar(t), schedule.alpha_bar(previous_timestep(ts, k, spacing))
        with torch.enable_grad():
            x = x.detach().requires_grad_(guidance > 0)
            tt = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
            eps = prior.eps(x, tt, use_ema=use_ema).float()
            x0 = (x - math.sqrt(1 - a) * eps) / math.sqrt(a)
            if clip is not None:
                x0 = x0.clamp(-clip, clip)
                eps = (x - math.sqrt(a) * x0) / math.sqrt(1 - a)
            if guidance > 0:
                # The decoder knows the unscaled latents (sample() divides by the scale too).
                grad, = torch.autograd.grad(loss(x0 / scale).sum(), x)
        x_prev = math.sqrt(a_prev) * x0.detach() + math.sqrt(max(1 - a_prev, 0.0)) * eps.detach()
        if guidance > 0:
            x_prev = x_prev - guidance * grad
        x = x_prev.detach()
    return x / scale


def optimise_latents(noise: torch.Tensor, loss: GuideLoss, steps: int, guidance: float, lr: float = 0.05) -> torch.Tensor:
    """argmin_z guidance·loss(z) + ½‖z‖² per item by Adam from ``noise`` (``steps`` iterations)."""
    _check(steps, guidance, None)
    z = noise.detach().float().clone()
    if guidance == 0:
        return z
    z.requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            objective = guidance * loss(z) + 0.5 * z.pow(2).flatten(1).sum(1)
            objective.sum().backward()
            opt.step()
    return z.detach()

"""The observation operator and guided latent sampling, for any domain and any guidable prior.

The operator maps a latent to the model-space values *at the observed coordinates themselves*:
for LDMI the hypernetwork's INR is evaluated there directly (points anywhere in the domain,
nothing rasterised); a conventional decoder renders only its grid, so its observations must sit
on that grid's cells. The prior does the conditioning (``Prior.guided_sample``: DPS-guided DDIM
for the diffusion prior, a MAP latent for the standard normal); here the misfit is built.
"""
from __future__ import annotations

from typing import Callable

import torch

from inrkit.errors import ConfigError, DataError
from inrkit.priors.samplers import randn

LIKELIHOODS = ("gaussian", "laplace")
Operator = Callable[[torch.Tensor], torch.Tensor]


def grid_cells(domain, coords: torch.Tensor, atol: float = 1e-4) -> torch.Tensor:
    """Indices of the domain's training-grid cells at ``coords`` (M, d); an error if one is off the grid."""
    grid = domain.grid().to(coords.device, torch.float32)
    idx = []
    for chunk in coords.split(256):
        d, i = torch.cdist(chunk.float(), grid).min(dim=1)
        if bool((d > atol).any()):
            raise ConfigError("this model's decoder renders only its own grid, and some observations lie between"
                              " its cells; observe on the data grid, or use an INR model (ldmi)")
        idx.append(i)
    return torch.cat(idx)


def observation_operator(model, coords: torch.Tensor) -> Operator:
    """z (B, *latent_shape) → model-space values (B, M, c) at ``coords`` (M, d), differentiable in z."""
    domain = model.domain
    coords = coords.to(model.device, torch.float32)
    if coords.dim() != 2 or coords.shape[1] != domain.coord_dim:
        raise DataError(f"observation coordinates must be (M, {domain.coord_dim}), got {tuple(coords.shape)}")
    if hasattr(model, "_inr_values"):
        return lambda z: domain.postprocess(model._inr_values(z, coords).float())
    cells = grid_cells(domain, coords)
    return lambda z: domain.postprocess(domain.from_grid(model.decoder(z).float()))[:, cells]


def misfit(likelihood: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """Weighted residuals (B, M, c) → per-item misfit (B,): ‖r‖₂ (gaussian; DPS's step) or ‖r‖₁ (laplace)."""
    if likelihood == "gaussian":
        return lambda r: r.pow(2).flatten(1).sum(1).clamp_min(1e-12).sqrt()
    if likelihood == "laplace":
        return lambda r: r.abs().flatten(1).sum(1)
    raise ConfigError(f"unknown guidance likelihood '{likelihood}'; known: {', '.join(LIKELIHOODS)}")


def check_guidable(model) -> str:
    """The prior's guidance method, or a one-line error naming the prior that cannot be guided."""
    prior = model.prior
    if not prior.guidable():
        raise ConfigError(f"this run's prior '{type(prior).__name__}' cannot be guided by observations;"
                          " completion needs a prior that declares a guidance method (diffusion, gaussian)")
    return prior.guidance_method


def guided_latents(model, coords: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None, *,
                   n: int = 1, steps: int = 50, guidance: float = 1.0, likelihood: str = "gaussian",
                   seed: int | None = None, use_ema: bool = True, batch_size: int = 16,
                   clip: float | None = None) -> torch.Tensor:
    """n latents per observed item, (B·n, *latent_shape) item-major, guided towards ``target``.

    ``coords`` (M, d) are shared by the B items; ``target`` (B, M, c) model-space values there;
    ``weights`` (B, M, c) (1 observed, 0 not; default all 1). The same seed gives the same result
    whatever ``batch_size``, and ``guidance=0`` the unconditional draws from the same noise.
    """
    check_guidable(model)
    if n < 1 or steps < 1 or batch_size < 1:
        raise ConfigError(f"guided sampling: n, steps and batch_size must be >= 1 (got {n}, {steps}, {batch_size})")
    loss_of = misfit(likelihood)
    target = target.float()
    if target.dim() == 2:
        target = target[None]
    weights = torch.ones_like(target) if weights is None else weights.float().expand_as(target)
    target = target.repeat_interleave(n, 0).to(model.device)
    weights = weights.repeat_interleave(n, 0).to(model.device)
    values_at = observation_operator(model, coords)
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(int(seed))
    total = target.shape[0]
    # All starting noise drawn at once (CPU generator): one seed, one result, on any device and batching.
    noise = randn((total, *model.prior.latent_shape), generator, model.device)
    was = model.training
    model.eval()
    out = []
    try:
        for i in range(0, total, batch_size):
            sl = slice(i, i + batch_size)
            tgt, w = target[sl], weights[sl]
            out.append(model.prior.guided_sample(noise[sl], lambda z, t=tgt, w=w: loss_of((values_at(z) - t) * w),
                                                 steps=steps, guidance=guidance, use_ema=use_ema, clip=clip))
    finally:
        model.train(was)
    return torch.cat(out)


@torch.no_grad()
def values_at(model, z: torch.Tensor, coords: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """Model-space values (B, M, c) of latents z at ``coords`` (M, d), in batches."""
    op = observation_operator(model, coords)
    was = model.training
    model.eval()
    try:
        return torch.cat([op(z[i : i + batch_size].to(model.device, torch.float32)).cpu()
                          for i in range(0, z.shape[0], batch_size)])
    finally:
        model.train(was)

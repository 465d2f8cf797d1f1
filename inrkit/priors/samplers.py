"""Samplers for ε-prediction diffusion: DDIM (Song et al. 2021) and DDPM ancestral sampling.

Both take ``eps_fn(x_t, t) → ε̂`` (t a (B,) long tensor) and a :class:`NoiseSchedule`; neither
knows the network. DDIM with η = 1 over all T steps *is* DDPM ancestral sampling with the
posterior variance β̃_t; both draw their noise in the same order, so with one generator seed
they follow the same trajectory (the tests rely on that).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch

from ..errors import ConfigError
from .schedule import NoiseSchedule

SPACINGS = ("leading", "trailing", "linspace", "uniform")
EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# Called after each step with (step index, timestep, x); may return a replacement x (inpainting).
Callback = Callable[[int, int, torch.Tensor], "torch.Tensor | None"]


def ddim_timesteps(num_timesteps: int, steps: int, spacing: str = "trailing") -> list[int]:
    """The ``steps`` timesteps a DDIM run visits, strictly decreasing, within [0, T − 1].

    ``leading``: 0, k, 2k, ... with k = T // steps (diffusers' default); it never visits T − 1.
    ``uniform``: CompVis' ``make_ddim_timesteps`` (what LDM and the LDMI code sample with):
    range(0, T, T // steps) + 1, so 1, k + 1, ...; like the original it yields more than ``steps``
    timesteps when ``steps`` does not divide T, and its last step lands on ᾱ_0, not on ᾱ = 1
    (see :func:`previous_timestep`). ``trailing``: round(T − i·T/steps) − 1, starting at T − 1
    (Lin et al. 2024 show that starting at the last timestep matters). ``linspace``:
    round(linspace(0, T − 1)).
    """
    if spacing not in SPACINGS:
        raise ConfigError(f"unknown timestep spacing '{spacing}'; known: {', '.join(SPACINGS)}")
    if not 1 <= steps <= num_timesteps:
        raise ConfigError(f"sampling steps must be in [1, {num_timesteps}], got {steps}")
    if spacing == "leading":
        ts = np.arange(steps) * (num_timesteps // steps)
    elif spacing == "uniform":
        if num_timesteps // steps < 2:
            raise ConfigError(f"'uniform' DDIM spacing needs at most T/2 = {num_timesteps // 2} steps"
                              f" (its +1 offset would step past t = T - 1), got {steps}")
        ts = np.arange(0, num_timesteps, num_timesteps // steps) + 1
    elif spacing == "trailing":
        # Integer arithmetic: a float arange(T, 0, -T/steps) can yield steps + 1 entries.
        ts = np.round(num_timesteps * np.arange(1, steps + 1) / steps).astype(np.int64) - 1
    else:
        ts = np.round(np.linspace(0, num_timesteps - 1, steps)).astype(np.int64)
    return [int(t) for t in ts[::-1]]


def previous_timestep(ts: Sequence[int], i: int, spacing: str) -> int:
    """The timestep step ``i`` of ``ts`` goes to; past the end, −1 (ᾱ = 1), or 0 (ᾱ_0) under
    ``uniform``, as CompVis' DDIM sampler takes ``alphas_prev[0] = alphas_cumprod[0]``."""
    if i + 1 < len(ts):
        return int(ts[i + 1])
    return 0 if spacing == "uniform" else -1


def randn(shape: Sequence[int], generator: torch.Generator | None, device, dtype=torch.float32) -> torch.Tensor:
    """Gaussian noise from ``generator`` (drawn on the generator's own device, then moved)."""
    if generator is None:
        return torch.randn(tuple(shape), device=device, dtype=dtype)
    return torch.randn(tuple(shape), generator=generator, device=generator.device, dtype=dtype).to(device)


def _start(shape, generator, device, x_T):
    if x_T is not None:
        return x_T.to(device=device, dtype=torch.float32)
    return randn(shape, generator, device)


def _timestep(t: int, n: int, device) -> torch.Tensor:
    return torch.full((n,), t, device=device, dtype=torch.long)


@torch.no_grad()
def ddim_sample(eps_fn: EpsFn, schedule: NoiseSchedule, shape: Sequence[int], *, steps: int = 50,
                eta: float = 0.0, spacing: str = "trailing", generator: torch.Generator | None = None,
                device=None, x_T: torch.Tensor | None = None, callback: Callback | None = None) -> torch.Tensor:
    """DDIM: x_{t'} = √ᾱ_{t'} x̂_0 + √(1 − ᾱ_{t'} − σ²) ε̂ + σ z, σ = η √((1−ᾱ_{t'})/(1−ᾱ_t)) √(1 − ᾱ_t/ᾱ_{t'})."""
    if not math.isfinite(eta) or eta < 0:
        raise ConfigError(f"DDIM eta must be a finite number >= 0, got {eta}")
    ts = ddim_timesteps(schedule.num_timesteps, steps, spacing)
    x = _start(shape, generator, device, x_T)
    for i, t in enumerate(ts):
        a, a_prev = schedule.alpha_bar(t), schedule.alpha_bar(previous_timestep(ts, i, spacing))
        eps = eps_fn(x, _timestep(t, x.shape[0], x.device)).float()
        x0 = (x - math.sqrt(1 - a) * eps) / math.sqrt(a)
        sigma = eta * math.sqrt((1 - a_prev) / (1 - a) * (1 - a / a_prev))
        x = math.sqrt(a_prev) * x0 + math.sqrt(max(1 - a_prev - sigma**2, 0.0)) * eps
        if sigma > 0:
            x = x + sigma * randn(x.shape, generator, x.device)
        if callback is not None:
            x = _callback(callback, i, t, x)
    return x


@torch.no_grad()
def ddpm_sample(eps_fn: EpsFn, schedule: NoiseSchedule, shape: Sequence[int], *,
                generator: torch.Generator | None = None, device=None, x_T: torch.Tensor | None = None,
                callback: Callback | None = None) -> torch.Tensor:
    """Ancestral sampling over all T steps: x_{t−1} = (x_t − β_t/√(1−ᾱ_t) ε̂)/√α_t + √β̃_t z.

    β̃_t = β_t (1 − ᾱ_{t−1})/(1 − ᾱ_t) is the true posterior variance ("fixed small", as LDM);
    no noise is added at the last step.
    """
    x = _start(shape, generator, device, x_T)
    for i, t in enumerate(range(schedule.num_timesteps - 1, -1, -1)):
        beta = float(schedule.betas64[t])
        a, a_prev = schedule.alpha_bar(t), schedule.alpha_bar(t - 1)
        eps = eps_fn(x, _timestep(t, x.shape[0], x.device)).float()
        x = (x - beta / math.sqrt(1 - a) * eps) / math.sqrt(1 - beta)
        if t > 0:
            x = x + math.sqrt(beta * (1 - a_prev) / (1 - a)) * randn(x.shape, generator, x.device)
        if callback is not None:
            x = _callback(callback, i, t, x)
    return x


def _callback(callback: Callback, i: int, t: int, x: torch.Tensor) -> torch.Tensor:
    out = callback(i, t, x)
    return x if out is None else out

"""DDPM noise schedules: β_t, ᾱ_t = ∏(1 − β), and the forward process q(x_t | x_0).

The denoiser network lives elsewhere (diffusers' habit): a schedule only knows noise levels.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError


def make_betas(schedule: str, num_timesteps: int, beta_start: float = 1.5e-3, beta_end: float = 1.95e-2) -> torch.Tensor:
    """β_1..β_T in float64.

    ``linear`` is LDM's: linear in √β from √beta_start to √beta_end, then squared (not linear in
    β, despite the name). ``cosine`` is Nichol & Dhariwal's ᾱ(t) = cos²((t/T + s)/(1 + s)·π/2),
    s = 0.008, with β clipped at 0.999; it ignores beta_start / beta_end.
    """
    if num_timesteps < 1:
        raise ConfigError(f"num_timesteps must be >= 1, got {num_timesteps}")
    if schedule == "linear":
        if not 0.0 < beta_start <= beta_end < 1.0:
            raise ConfigError(f"need 0 < beta_start <= beta_end < 1, got {beta_start}, {beta_end}")
        return torch.linspace(math.sqrt(beta_start), math.sqrt(beta_end), num_timesteps, dtype=torch.float64) ** 2
    if schedule == "cosine":
        s = 0.008
        steps = torch.arange(num_timesteps + 1, dtype=torch.float64) / num_timesteps
        abar = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        return (1 - abar[1:] / abar[:-1]).clamp(max=0.999)
    raise ConfigError(f"unknown noise schedule '{schedule}'; known: linear, cosine")


class NoiseSchedule(nn.Module):
    """β, α and ᾱ as buffers (recomputed from the config, so not saved), index t ∈ [0, T−1]."""

    def __init__(self, num_timesteps: int = 1000, schedule: str = "linear",
                 beta_start: float = 1.5e-3, beta_end: float = 1.95e-2):
        super().__init__()
        betas = make_betas(schedule, num_timesteps, beta_start, beta_end)
        abar = torch.cumprod(1 - betas, dim=0)
        self.num_timesteps = num_timesteps
        # Samplers read per-step scalars from these float64 copies: ᾱ near 1 loses digits in fp32.
        self.betas64 = betas
        self.alphas_cumprod64 = abar
        self.register_buffer("betas", betas.float(), persistent=False)
        self.register_buffer("alphas_cumprod", abar.float(), persistent=False)

    def alpha_bar(self, t: int) -> float:
        """ᾱ_t as a float; t = −1 (past the last step) is the clean signal, ᾱ = 1."""
        return 1.0 if t < 0 else float(self.alphas_cumprod64[t])

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε, with t a (B,) tensor of indices."""
        abar = self.alphas_cumprod.to(x0.device)[t].to(x0.dtype)
        abar = abar.reshape(-1, *([1] * (x0.dim() - 1)))
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise

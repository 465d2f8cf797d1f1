"""Invertible layers of the ``flow`` prior, over flat vectors (B, D).

Each layer maps data towards noise (``forward``: the normalising direction, the one maximum
likelihood needs) and returns log|det ∂y/∂x| per item; ``inverse`` maps noise back to data (the
sampling direction). The affine coupling inverts in closed form; the planar layer, explicit only
towards noise, inverts by solving one monotone scalar equation per item (bisection).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class ElementwiseAffine(nn.Module):
    """y = (x − loc) · exp(−log_scale), per dimension; starts as the identity."""

    def __init__(self, dim: int):
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(dim))
        self.log_scale = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (x - self.loc) * torch.exp(-self.log_scale), (-self.log_scale.sum()).expand(x.shape[0])

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return y * torch.exp(self.log_scale) + self.loc, self.log_scale.sum().expand(y.shape[0])


class AffineCoupling(nn.Module):
    """RealNVP (Dinh et al. 2017): the dimensions where ``mask`` is 1 pass through and condition
    y = x · exp(s) + t on the others, with s = bound · tanh(s_raw / bound) kept in (−bound, bound).

    The conditioner's last layer starts at zero, so the layer starts as the identity.
    """

    def __init__(self, dim: int, mask: torch.Tensor, hidden: int, layers: int, bound: float):
        super().__init__()
        self.register_buffer("mask", mask.float())
        self.bound = float(bound)
        sizes = [dim] + [hidden] * layers
        blocks: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            blocks += [nn.Linear(a, b), nn.SiLU()]
        out = nn.Linear(sizes[-1], 2 * dim)
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)
        self.net = nn.Sequential(*blocks, out)

    @property
    def out(self) -> nn.Linear:
        """The conditioner's last layer (not registered twice: tied names would confuse EMA)."""
        return self.net[-1]

    def _scale_shift(self, kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self.net(kept).chunk(2, dim=-1)
        free = 1 - self.mask
        return self.bound * torch.tanh(s / self.bound) * free, t * free

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self._scale_shift(x * self.mask)
        return x * torch.exp(s) + t, s.sum(-1)

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self._scale_shift(y * self.mask)
        return (y - t) * torch.exp(-s), -s.sum(-1)


class Planar(nn.Module):
    """y = x + û · tanh(wᵀx + b) (Rezende & Mohamed 2015), with û constrained so that wᵀû > −1,
    which makes the layer invertible: log|det| = log(1 + (1 − tanh²(wᵀx + b)) · wᵀû).

    Inverse: α = wᵀx solves α + wᵀû · tanh(α + b) = wᵀy, increasing in α and bracketed by
    wᵀy ± |wᵀû|; ``iterations`` bisection steps halve that bracket each time.
    """

    def __init__(self, dim: int, iterations: int = 60):
        super().__init__()
        bound = 1.0 / math.sqrt(dim)
        self.u = nn.Parameter(torch.empty(dim).uniform_(-bound, bound))
        self.w = nn.Parameter(torch.empty(dim).uniform_(-bound, bound))
        self.b = nn.Parameter(torch.zeros(()))
        self.iterations = iterations

    def u_hat(self) -> tuple[torch.Tensor, torch.Tensor]:
        wu = self.w @ self.u
        wu_hat = F.softplus(wu) - 1  # m(wᵀu) > −1
        return self.u + (wu_hat - wu) * self.w / self.w.square().sum().clamp_min(1e-12), wu_hat

    def _logdet(self, a: torch.Tensor, wu_hat: torch.Tensor) -> torch.Tensor:
        return torch.log1p((1 - torch.tanh(a).square()) * wu_hat)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u_hat, wu_hat = self.u_hat()
        a = x @ self.w + self.b
        return x + u_hat * torch.tanh(a)[:, None], self._logdet(a, wu_hat)

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u_hat, wu_hat = self.u_hat()
        target = y @ self.w
        reach = wu_hat.abs()
        lo, hi = target - reach, target + reach
        for _ in range(self.iterations):
            mid = 0.5 * (lo + hi)
            above = mid + wu_hat * torch.tanh(mid + self.b) > target
            lo, hi = torch.where(above, lo, mid), torch.where(above, mid, hi)
        alpha = 0.5 * (lo + hi)
        return y - u_hat * torch.tanh(alpha + self.b)[:, None], -self._logdet(alpha + self.b, wu_hat)


class Flow(nn.Module):
    """An elementwise affine layer, then ``layers``: ``forward(x)`` → (noise, Σ log|det|) and
    ``forward(e, inverse=True)`` → (data, Σ log|det| of the inverse), so that one module (and one
    ``functional_call`` with EMA weights) serves both directions."""

    def __init__(self, dim: int, layers: list[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList([ElementwiseAffine(dim), *layers])

    def forward(self, x: torch.Tensor, inverse: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        total = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
        for layer in reversed(self.layers) if inverse else self.layers:
            x, logdet = layer.inverse(x) if inverse else layer(x)
            total = total + logdet
        return x, total


def coupling_masks(dim: int, n: int) -> list[torch.Tensor]:
    """Masks cycling through even/odd positions and first/second half, so that every dimension is
    transformed by some layers and every pair of dimensions, near or far, can interact."""
    idx = torch.arange(dim)
    cycle = [idx % 2 == 0, idx % 2 == 1, idx < dim // 2, idx >= dim // 2]
    return [cycle[k % 4] for k in range(n)]

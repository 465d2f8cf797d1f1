"""A point-set encoder: any set of (coordinate, value) pairs → q(z | X, Y) over a latent grid.

A learned grid of query tokens cross-attends to the embedded points (Perceiver-style), then the
queries attend to each other. Nothing depends on the number or order of the points, so the
encoder takes any resolution, and a mask drops unobserved points (completion from partial
observations). Attention runs inside each sample only.
"""
from __future__ import annotations

import math

import pydantic
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, DataError
from ..registry import PartConfig, encoders
from .base import Encoder
from .conv import LOGVAR_RANGE, check_grid


class PointSetEncoderConfig(PartConfig):
    dim: int = pydantic.Field(128, ge=1, description="token width")
    heads: int = pydantic.Field(4, ge=1)
    depth: int = pydantic.Field(2, ge=1, description="cross-attention + self-attention rounds")
    ff_mult: int = pydantic.Field(4, ge=1)
    num_frequencies: int = pydantic.Field(10, ge=0, description="sin/cos octaves of each coordinate")
    latent_channels: int = pydantic.Field(3, ge=1)
    latent_size: list[int] | None = pydantic.Field(None, description="latent grid; if unset, the data grid / 4 rounded up")
    coord_dim: int | None = pydantic.Field(None, ge=1, description="coordinate dimension; if unset, that of the data grid")


def grid_coords(grid_shape, device=None) -> torch.Tensor:
    """Cell centres of a regular grid in [-1, 1]^d, (N, d), in the order of a row-major flatten."""
    axes = [(torch.arange(n, device=device, dtype=torch.float32) * 2 + 1) / n - 1 for n in grid_shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(grid_shape))


class _Block(nn.Module):
    """Pre-norm attention (cross when ``context`` is given) followed by a feed-forward layer."""

    def __init__(self, dim: int, heads: int, ff_mult: int, cross: bool):
        super().__init__()
        self.heads = heads
        self.norm_q, self.norm_ff = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim) if cross else None
        self.to_q, self.to_kv, self.to_out = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim), nn.Linear(dim, dim)
        self.ff = nn.Sequential(nn.Linear(dim, ff_mult * dim), nn.GELU(), nn.Linear(ff_mult * dim, dim))

    def forward(self, x, context=None, mask=None):
        b, n, d = x.shape
        q_in = self.norm_q(x)
        kv_in = q_in if context is None else self.norm_kv(context)
        k, v = self.to_kv(kv_in).chunk(2, dim=-1)

        def split(t):
            return t.reshape(b, t.shape[1], self.heads, d // self.heads).transpose(1, 2)

        attn_mask = None if mask is None else mask[:, None, None, :]
        out = F.scaled_dot_product_attention(split(self.to_q(q_in)), split(k), split(v), attn_mask=attn_mask)
        x = x + self.to_out(out.transpose(1, 2).reshape(b, n, d))
        return x + self.ff(self.norm_ff(x))


@encoders.register("pointset", config=PointSetEncoderConfig,
                   description="set encoder over (coords, values): latent queries cross-attend to points")
class PointSetEncoder(Encoder):
    """``forward(x)`` with a grid (B, c, *grid), or ``forward(values, coords, mask)`` with
    values (B, N, c), coords (N, d) or (B, N, d) and an optional (B, N) bool mask of observed points."""

    def __init__(self, config: PointSetEncoderConfig, *, in_channels: int, grid_shape):
        super().__init__()
        self.config = cfg = config
        self.grid_shape = check_grid("encoders/pointset", grid_shape, len(tuple(grid_shape)))
        self.in_channels = int(in_channels)
        self.coord_dim = cfg.coord_dim or len(self.grid_shape)
        if cfg.dim % cfg.heads:
            raise ConfigError(f"encoders/pointset: dim {cfg.dim} does not split into {cfg.heads} heads")
        latent_grid = tuple(cfg.latent_size) if cfg.latent_size else tuple(math.ceil(n / 4) for n in self.grid_shape)
        if any(n < 1 for n in latent_grid):
            raise ConfigError(f"encoders/pointset: bad latent_size {list(latent_grid)}")
        self.latent_shape = (cfg.latent_channels, *latent_grid)

        self.register_buffer("frequencies", math.pi * 2.0 ** torch.arange(cfg.num_frequencies), persistent=False)
        feat = self.coord_dim * (1 + 2 * cfg.num_frequencies) + self.in_channels
        self.embed = nn.Sequential(nn.Linear(feat, cfg.dim), nn.GELU(), nn.Linear(cfg.dim, cfg.dim))
        self.queries = nn.Parameter(torch.randn(math.prod(latent_grid), cfg.dim) * 0.02)
        self.cross = nn.ModuleList(_Block(cfg.dim, cfg.heads, cfg.ff_mult, cross=True) for _ in range(cfg.depth))
        self.self_attn = nn.ModuleList(_Block(cfg.dim, cfg.heads, cfg.ff_mult, cross=False) for _ in range(cfg.depth))
        self.norm_out = nn.LayerNorm(cfg.dim)
        self.to_moments = nn.Linear(cfg.dim, 2 * cfg.latent_channels)

    def _points(self, x, coords, mask):
        if coords is None:
            if x.dim() != len(self.grid_shape) + 2 or x.shape[1] != self.in_channels:
                raise DataError(f"encoders/pointset: expected a grid (B, {self.in_channels}, *grid) or values with"
                                f" coords, got {tuple(x.shape)}")
            coords = grid_coords(x.shape[2:], device=x.device)
            x = x.flatten(2).transpose(1, 2)
        if x.dim() != 3 or x.shape[-1] != self.in_channels or coords.shape[-1] != self.coord_dim \
                or coords.shape[-2] != x.shape[1]:
            raise DataError(f"encoders/pointset: values {tuple(x.shape)} and coords {tuple(coords.shape)} must be"
                            f" (B, N, {self.in_channels}) and (N, {self.coord_dim}) or (B, N, {self.coord_dim})")
        if coords.dim() == 2:
            coords = coords.unsqueeze(0).expand(x.shape[0], -1, -1)
        if mask is not None and (mask.shape != x.shape[:2] or not bool(mask.any(dim=1).all())):
            raise DataError(f"encoders/pointset: mask {tuple(mask.shape)} must be (B, N) with a point observed per item")
        return x, coords, mask

    def forward(self, x: torch.Tensor, coords: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        values, coords, mask = self._points(x, coords, mask)
        angles = coords.unsqueeze(-1) * self.frequencies.to(coords.dtype)
        feats = torch.cat([coords, angles.sin().flatten(2), angles.cos().flatten(2), values.to(coords.dtype)], dim=-1)
        tokens = self.embed(feats)
        q = self.queries.unsqueeze(0).expand(values.shape[0], -1, -1)
        for cross, self_attn in zip(self.cross, self.self_attn):
            q = self_attn(cross(q, context=tokens, mask=mask))
        moments = self.to_moments(self.norm_out(q)).transpose(1, 2)
        mean, logvar = moments.reshape(values.shape[0], -1, *self.latent_shape[1:]).chunk(2, dim=1)
        return mean, logvar.clamp(*LOGVAR_RANGE)

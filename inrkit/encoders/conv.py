"""LDM-style convolutional encoders: a data grid (2D image / sphere, 3D voxels) → q(z | x).

Layout (and parameter names) follow the diffusers ``AutoencoderKL`` encoder: ``conv_in``; per
level ``num_res_blocks`` ResnetBlocks and a stride-2 downsample (none after the last level);
a mid block; GroupNorm, SiLU, ``conv_out`` to mean and log-variance.
"""
from __future__ import annotations

from typing import Literal

import pydantic
import torch
import torch.nn.functional as F

from ..registry import PartConfig, encoders
from ..errors import ConfigError, DataError
from ..nn import ChannelMult, MidBlock, conv, level_sizes, norm, resize, resnet_levels, run_down
from .base import Encoder

# Wider than this, exp(logvar) over- or underflows in fp32 (LDM clamps the same way).
LOGVAR_RANGE = (-30.0, 20.0)


class ConvEncoderConfig(PartConfig):
    base_channels: int = pydantic.Field(64, ge=1, description="channels of the first level")
    channel_mult: ChannelMult = pydantic.Field([1, 2, 2], min_length=1, description="channel multiplier per level")
    num_res_blocks: int = pydantic.Field(1, ge=0, description="ResnetBlocks per level")
    latent_channels: int = pydantic.Field(3, ge=1)
    latent_size: list[int] | None = pydantic.Field(
        None, description="latent grid; if unset, grid / 2^(levels-1) rounded up (symmetric padding)")
    periodic: bool = pydantic.Field(False, description="circular padding along the last (longitude) axis")
    mid_attention: bool = pydantic.Field(True, description="self-attention in the mid block")
    attention_heads: int = pydantic.Field(1, ge=1)
    dropout: float = pydantic.Field(0.0, ge=0.0, lt=1.0)
    downsample_padding: Literal["symmetric", "asymmetric"] = pydantic.Field(
        "symmetric", description="asymmetric = the diffusers/LDM autoencoder layout (floor sizes)")

    @pydantic.field_validator("latent_size")
    @classmethod
    def _positive_size(cls, v):
        if v is not None and any(n < 1 for n in v):
            raise ValueError("latent sizes must be >= 1")
        return v


class SphereConvEncoderConfig(ConvEncoderConfig):
    periodic: bool = pydantic.Field(True, description="circular padding along the last (longitude) axis")


def check_grid(kind: str, grid_shape, dims: int) -> tuple[int, ...]:
    grid = tuple(int(n) for n in grid_shape)
    if len(grid) != dims or any(n < 1 for n in grid):
        raise ConfigError(f"{kind}: grid_shape {grid} must be {dims} positive sizes")
    return grid


class ConvEncoder(Encoder):
    """ResNet encoder over a 2D grid (B, c, H, W) → mean, logvar (B, C, h, w)."""

    dims = 2

    def __init__(self, config: ConvEncoderConfig, *, in_channels: int, grid_shape):
        super().__init__()
        self.config = config
        where = f"encoders/{getattr(self, 'registry_name', type(self).__name__)}"
        self.grid_shape = check_grid(where, grid_shape, self.dims)
        self.in_channels = int(in_channels)
        d, cfg = self.dims, config
        if cfg.latent_size is not None and len(cfg.latent_size) != d:
            raise ConfigError(f"{where}: latent_size {cfg.latent_size} must have {d} entries")
        chans = [cfg.base_channels * m for m in cfg.channel_mult]
        self.feature_size = level_sizes(self.grid_shape, len(chans), cfg.downsample_padding)[-1]
        latent_grid = tuple(cfg.latent_size) if cfg.latent_size is not None else self.feature_size
        self.latent_shape = (cfg.latent_channels, *latent_grid)

        self.conv_in = conv(d, self.in_channels, chans[0], periodic=cfg.periodic)
        self.down_blocks, ch = resnet_levels(d, chans, cfg.num_res_blocks, down=True, padding=cfg.downsample_padding,
                                             dropout=cfg.dropout, periodic=cfg.periodic)
        self.mid_block = MidBlock(d, ch, attention=cfg.mid_attention, heads=cfg.attention_heads,
                                  dropout=cfg.dropout, periodic=cfg.periodic)
        self.conv_norm_out = norm(ch)
        self.conv_out = conv(d, ch, 2 * cfg.latent_channels, periodic=cfg.periodic)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != self.dims + 2 or x.shape[1] != self.in_channels:
            raise DataError(f"{type(self).__name__}: expected (B, {self.in_channels}, {'×'.join(map(str, self.grid_shape))}),"
                            f" got {tuple(x.shape)}")
        h = run_down(self.down_blocks, self.conv_in(x))
        h = F.silu(self.conv_norm_out(self.mid_block(h)))
        h = resize(h, self.latent_shape[1:])
        mean, logvar = self.conv_out(h).chunk(2, dim=1)
        return mean, logvar.clamp(*LOGVAR_RANGE)


class ConvEncoder3d(ConvEncoder):
    """ResNet encoder over voxels (B, c, D, H, W) → mean, logvar (B, C, d, h, w)."""

    dims = 3


class SphereConvEncoder(ConvEncoder):
    """``conv2d`` with circular padding in longitude by default (lat/lon grids)."""


encoders.register("conv2d", config=ConvEncoderConfig,
                           description="LDM-style ResNet encoder over 2D grids")(ConvEncoder)
encoders.register("conv3d", config=ConvEncoderConfig,
                           description="LDM-style ResNet encoder over 3D voxel grids")(ConvEncoder3d)
encoders.register("conv2d_sphere", config=SphereConvEncoderConfig,
                           description="conv2d with circular padding in longitude (lat/lon grids)")(SphereConvEncoder)

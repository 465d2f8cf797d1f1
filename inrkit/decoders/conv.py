"""LDM-style convolutional decoders (latent grid → data grid) for conventional latent diffusion.

The mirror of :mod:`inrkit.encoders.conv`, named as the diffusers ``AutoencoderKL`` decoder:
``conv_in``, mid block, per level ``num_res_blocks + 1`` ResnetBlocks and a nearest ×2 upsample,
GroupNorm, SiLU, ``conv_out``. Each upsample goes to the exact size the matching encoder level
had, so odd grids (46×90 → 23×45 → 12×23) come back to their own size with no final crop.
"""
from __future__ import annotations

from typing import Literal

import pydantic
import torch
import torch.nn.functional as F
from torch import nn

from ..registry import PartConfig, decoders
from ..encoders.conv import check_grid
from ..errors import ConfigError, DataError
from ..nn import ChannelMult, MidBlock, conv, level_sizes, norm, resize, resnet_levels, run_up


class ConvDecoderConfig(PartConfig):
    base_channels: int = pydantic.Field(64, ge=1, description="channels of the finest level")
    channel_mult: ChannelMult = pydantic.Field([1, 2, 2], min_length=1, description="channel multiplier per level, finest first")
    num_res_blocks: int = pydantic.Field(1, ge=0, description="the decoder runs num_res_blocks + 1 per level")
    periodic: bool = pydantic.Field(False, description="circular padding along the last (longitude) axis")
    mid_attention: bool = True
    attention_heads: int = pydantic.Field(1, ge=1)
    dropout: float = pydantic.Field(0.0, ge=0.0, lt=1.0)
    downsample_padding: Literal["symmetric", "asymmetric"] = pydantic.Field(
        "symmetric", description="the matching encoder's rule, which sets the size of each level")


class SphereConvDecoderConfig(ConvDecoderConfig):
    periodic: bool = pydantic.Field(True, description="circular padding along the last (longitude) axis")


class ConvDecoder(nn.Module):
    """ResNet decoder: z (B, C, h, w) → (B, c, H, W) on the exact ``grid_shape``."""

    dims = 2

    def __init__(self, config: ConvDecoderConfig, *, out_channels: int, grid_shape, latent_shape):
        super().__init__()
        self.config = config
        where = f"decoders/{getattr(self, 'registry_name', type(self).__name__)}"
        d, cfg = self.dims, config
        self.grid_shape = check_grid(where, grid_shape, d)
        self.latent_shape = tuple(int(n) for n in latent_shape)
        if len(self.latent_shape) != d + 1:
            raise ConfigError(f"{where}: latent_shape {self.latent_shape} must be (C, {d} sizes)")
        self.out_channels = int(out_channels)
        chans = [cfg.base_channels * m for m in reversed(cfg.channel_mult)]
        self.level_sizes = level_sizes(self.grid_shape, len(chans), cfg.downsample_padding)[::-1]

        ch = chans[0]
        self.conv_in = conv(d, self.latent_shape[0], ch, periodic=cfg.periodic)
        self.mid_block = MidBlock(d, ch, attention=cfg.mid_attention, heads=cfg.attention_heads,
                                  dropout=cfg.dropout, periodic=cfg.periodic)
        self.up_blocks, ch = resnet_levels(d, chans, cfg.num_res_blocks + 1, down=False, dropout=cfg.dropout,
                                           periodic=cfg.periodic)
        self.conv_norm_out = norm(ch)
        self.conv_out = conv(d, ch, self.out_channels, periodic=cfg.periodic)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if tuple(z.shape[1:]) != self.latent_shape:
            raise DataError(f"{type(self).__name__}: expected latents (B, {', '.join(map(str, self.latent_shape))}),"
                            f" got {tuple(z.shape)}")
        h = resize(self.conv_in(z), self.level_sizes[0])
        h = run_up(self.up_blocks, self.mid_block(h), self.level_sizes)
        return self.conv_out(F.silu(self.conv_norm_out(h)))


class ConvDecoder3d(ConvDecoder):
    """ResNet decoder: z (B, C, d, h, w) → voxels (B, c, D, H, W)."""

    dims = 3


class SphereConvDecoder(ConvDecoder):
    """``conv2d`` with circular padding in longitude by default (lat/lon grids)."""


decoders.register("conv2d", config=ConvDecoderConfig,
                           description="LDM-style ResNet decoder to 2D grids")(ConvDecoder)
decoders.register("conv3d", config=ConvDecoderConfig,
                           description="LDM-style ResNet decoder to 3D voxel grids")(ConvDecoder3d)
decoders.register("conv2d_sphere", config=SphereConvDecoderConfig,
                           description="conv2d decoder with circular padding in longitude")(SphereConvDecoder)

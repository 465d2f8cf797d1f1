"""The diffusers ``AutoencoderKL`` layout as an inrkit encoder and decoder, key for key.

A pre-trained autoencoder saved by diffusers (``config.json`` + ``diffusion_pytorch_model.safetensors``)
loads into these modules without diffusers installed: ``encoder.*`` + ``quant_conv.*`` become the
encoder's weights, ``post_quant_conv.*`` + ``decoder.*`` the decoder's. The blocks are inrkit's own
(:mod:`inrkit.nn`, already named as diffusers names them); what differs from ``conv2d`` is the
channel list (any, not base × multipliers), diffusers' fixed GroupNorm group count, the
asymmetric (floor) downsampling, and the 1×1 quant convs.
"""
from __future__ import annotations

import pydantic
import torch
import torch.nn.functional as F
from torch import nn

from inrkit.encoders.base import Encoder
from inrkit.encoders.conv import LOGVAR_RANGE, check_grid
from inrkit.errors import ConfigError, DataError
from inrkit.nn import GroupNorm, MidBlock, conv, level_sizes, norm, resnet_levels, run_down, run_up
from inrkit.registry import PartConfig, decoders, encoders


class AutoencoderKLConfig(PartConfig):
    """The fields of a diffusers ``AutoencoderKL`` config.json that shape its weights."""

    block_out_channels: list[int] = pydantic.Field([128, 256, 512, 512], min_length=1)
    layers_per_block: int = pydantic.Field(2, ge=1)
    latent_channels: int = pydantic.Field(4, ge=1)
    norm_num_groups: int = pydantic.Field(32, ge=1)
    mid_block_add_attention: bool = True
    use_quant_conv: bool = True
    use_post_quant_conv: bool = True
    scaling_factor: float = pydantic.Field(0.18215, description="diffusers' latent scale (recorded; inrkit priors standardise their own)")

    @pydantic.model_validator(mode="after")
    def _groups_divide(self):
        bad = [c for c in self.block_out_channels if c % self.norm_num_groups]
        if bad:
            raise ValueError(f"block_out_channels {self.block_out_channels} must be multiples of norm_num_groups={self.norm_num_groups}")
        return self


def regroup(module: nn.Module, groups: int) -> nn.Module:
    """Give every GroupNorm ``groups`` groups: diffusers fixes the count, inrkit.nn adapts it to the width."""
    for name, child in module.named_children():
        if isinstance(child, nn.GroupNorm):
            setattr(module, name, GroupNorm(groups, child.num_channels, eps=child.eps))
        else:
            regroup(child, groups)
    return module


class AutoencoderKLEncoder(Encoder):
    """Image (B, c, H, W) → mean, logvar (B, latent_channels, H / 2^(L-1), W / 2^(L-1)), floor sizes."""

    def __init__(self, config: AutoencoderKLConfig, *, in_channels: int, grid_shape):
        super().__init__()
        self.config = cfg = config
        self.grid_shape = check_grid("encoders/autoencoder_kl", grid_shape, 2)
        self.in_channels = int(in_channels)
        chans = cfg.block_out_channels
        self.latent_shape = (cfg.latent_channels, *level_sizes(self.grid_shape, len(chans), "asymmetric")[-1])
        self.conv_in = conv(2, self.in_channels, chans[0])
        self.down_blocks, ch = resnet_levels(2, chans, cfg.layers_per_block, down=True, padding="asymmetric")
        self.mid_block = MidBlock(2, ch, attention=cfg.mid_block_add_attention)
        self.conv_norm_out = norm(ch)
        self.conv_out = conv(2, ch, 2 * cfg.latent_channels)
        self.quant_conv = nn.Conv2d(2 * cfg.latent_channels, 2 * cfg.latent_channels, 1) if cfg.use_quant_conv else None
        regroup(self, cfg.norm_num_groups)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise DataError(f"encoders/autoencoder_kl: expected (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        h = run_down(self.down_blocks, self.conv_in(x))
        h = self.conv_out(F.silu(self.conv_norm_out(self.mid_block(h))))
        if self.quant_conv is not None:
            h = self.quant_conv(h)
        mean, logvar = h.chunk(2, dim=1)
        return mean, logvar.clamp(*LOGVAR_RANGE)


class AutoencoderKLDecoder(nn.Module):
    """Latents (B, latent_channels, h, w) → image (B, c, H, W) on the exact ``grid_shape``."""

    def __init__(self, config: AutoencoderKLConfig, *, out_channels: int, grid_shape, latent_shape):
        super().__init__()
        self.config = cfg = config
        self.grid_shape = check_grid("decoders/autoencoder_kl", grid_shape, 2)
        self.latent_shape = tuple(int(n) for n in latent_shape)
        if len(self.latent_shape) != 3 or self.latent_shape[0] != cfg.latent_channels:
            raise ConfigError(f"decoders/autoencoder_kl: latent_shape {self.latent_shape} must be"
                              f" ({cfg.latent_channels}, h, w)")
        chans = list(reversed(cfg.block_out_channels))
        # upsampling returns to the encoder's exact sizes, so odd grids come back whole
        self.level_sizes = level_sizes(self.grid_shape, len(chans), "asymmetric")[::-1]
        lc = cfg.latent_channels
        self.post_quant_conv = nn.Conv2d(lc, lc, 1) if cfg.use_post_quant_conv else None
        ch = chans[0]
        self.conv_in = conv(2, lc, ch)
        self.mid_block = MidBlock(2, ch, attention=cfg.mid_block_add_attention)
        self.up_blocks, ch = resnet_levels(2, chans, cfg.layers_per_block + 1, down=False)
        self.conv_norm_out = norm(ch)
        self.conv_out = conv(2, ch, int(out_channels))
        regroup(self, cfg.norm_num_groups)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if tuple(z.shape[1:]) != self.latent_shape:
            raise DataError(f"decoders/autoencoder_kl: expected latents (B, {', '.join(map(str, self.latent_shape))}),"
                            f" got {tuple(z.shape)}")
        if self.post_quant_conv is not None:
            z = self.post_quant_conv(z)
        h = run_up(self.up_blocks, self.mid_block(self.conv_in(z)), self.level_sizes)
        return self.conv_out(F.silu(self.conv_norm_out(h)))


encoders.register("autoencoder_kl", config=AutoencoderKLConfig,
                  description="the diffusers AutoencoderKL encoder (loads its weights)")(AutoencoderKLEncoder)
decoders.register("autoencoder_kl", config=AutoencoderKLConfig,
                  description="the diffusers AutoencoderKL decoder (loads its weights)")(AutoencoderKLDecoder)

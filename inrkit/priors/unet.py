"""A UNet ε-predictor over latent grids of any size (2D or 3D), for the diffusion prior.

Odd latent grids (11×22, 5×7, 3×5×7) are padded on the high side to a multiple of
2^(levels − 1) and the output is cropped back: every down/upsample then halves/doubles exactly,
so skip connections always line up. Layout after LDM's ``openaimodel`` (ADM): sinusoidal time
embedding → MLP, ResnetBlocks with the embedding added, self-attention only at the lowest
resolution (or at LDM's ``attention_resolutions``) and in the middle, a zero-initialised output conv.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..nn import Attention, Downsample, Level, MidBlock, ResnetBlock, Upsample, conv, norm, timestep_embedding


def heads_for(channels: int, head_channels: int) -> int:
    return channels // head_channels if channels % head_channels == 0 and channels >= head_channels else 1


class UNet(nn.Module):
    """ε̂(x_t, t) for x_t of shape (B, C, *grid), grid 2D or 3D."""

    def __init__(self, *, dims: int, channels: int, model_channels: int = 64, channel_mult: Sequence[int] = (1, 2),
                 num_res_blocks: int = 1, attention: bool = True, num_head_channels: int = 32, dropout: float = 0.0,
                 attention_resolutions: Sequence[int] | None = None):
        super().__init__()
        # LDM's attention_resolutions are downsampling factors (level i has factor 2^i); None:
        # attention at the lowest resolution only. The middle block attends whenever ``attention``.
        attend = [attention and (i == len(channel_mult) - 1 if attention_resolutions is None
                                 else 2 ** i in set(attention_resolutions)) for i in range(len(channel_mult))]
        self.dims, self.channels, self.model_channels = dims, channels, model_channels
        self.levels = len(channel_mult)
        temb = 4 * model_channels
        self.time_embedding = nn.Sequential(nn.Linear(model_channels, temb), nn.SiLU(), nn.Linear(temb, temb))
        block = dict(temb_channels=temb, dropout=dropout)

        self.conv_in = conv(dims, channels, model_channels)
        skips, ch = [model_channels], model_channels
        self.down_blocks = nn.ModuleList()
        for i, mult in enumerate(channel_mult):
            out, lowest = model_channels * mult, i == self.levels - 1
            level = Level()
            for _ in range(num_res_blocks):
                level.resnets.append(ResnetBlock(dims, ch, out, **block))
                ch = out
                if attend[i]:
                    level.attentions.append(Attention(ch, heads_for(ch, num_head_channels)))
                skips.append(ch)
            if not lowest:
                level.downsamplers = nn.ModuleList([Downsample(dims, ch)])
                skips.append(ch)
            self.down_blocks.append(level)

        self.mid_block = MidBlock(dims, ch, attention=attention, heads=heads_for(ch, num_head_channels), **block)

        self.up_blocks = nn.ModuleList()
        for i, mult in reversed(list(enumerate(channel_mult))):
            out = model_channels * mult
            level = Level()
            for _ in range(num_res_blocks + 1):
                level.resnets.append(ResnetBlock(dims, ch + skips.pop(), out, **block))
                ch = out
                if attend[i]:
                    level.attentions.append(Attention(ch, heads_for(ch, num_head_channels)))
            if i > 0:
                level.upsamplers = nn.ModuleList([Upsample(dims, ch)])
            self.up_blocks.append(level)

        self.conv_norm_out = norm(ch)
        self.conv_out = conv(dims, ch, channels)
        # Zero output at init: the first steps predict ε̂ = 0 instead of large random noise.
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        grid = x.shape[2:]
        mult = 2 ** (self.levels - 1)
        pad = [(0, -n % mult) for n in grid]
        if any(hi for _, hi in pad):
            x = F.pad(x, [v for p in reversed(pad) for v in p])
        temb = self.time_embedding(timestep_embedding(t, self.model_channels).to(x.dtype))

        h = self.conv_in(x)
        hs = [h]
        for level in self.down_blocks:
            for j, block in enumerate(level.resnets):
                h = block(h, temb)
                if len(level.attentions):
                    h = level.attentions[j](h)
                hs.append(h)
            if hasattr(level, "downsamplers"):
                h = level.downsamplers[0](h)
                hs.append(h)
        h = self.mid_block(h, temb)
        for level in self.up_blocks:
            for j, block in enumerate(level.resnets):
                h = block(torch.cat([h, hs.pop()], dim=1), temb)
                if len(level.attentions):
                    h = level.attentions[j](h)
            if hasattr(level, "upsamplers"):
                h = level.upsamplers[0](h)
        h = self.conv_out(F.silu(self.conv_norm_out(h)))
        return h[(slice(None), slice(None), *(slice(0, n) for n in grid))]

"""Convolutional building blocks shared by encoders, decoders and the diffusion UNet.

Every block works on 2D and 3D grids (``dims``). Module names follow the diffusers
``AutoencoderKL`` layout (``norm1``, ``conv1``, ``conv_shortcut``, ``to_q`` ...) so that a
standard autoencoder checkpoint maps onto ours key for key.

``periodic`` means circular padding along the last spatial axis (longitude on a lat/lon grid)
and zero padding along the others: a sphere has no edge in longitude, but has poles in latitude.
"""
from __future__ import annotations

import math
from typing import Annotated, Sequence

import pydantic
import torch
import torch.nn.functional as F
from torch import nn


def num_groups(channels: int) -> int:
    """GroupNorm groups: 32 as LDM uses, or the largest divisor of 32 that fits narrow layers."""
    return math.gcd(32, channels)


class GroupNorm(nn.GroupNorm):
    """``nn.GroupNorm`` (same parameters and state dict) that keeps a channels-last input
    channels-last, in the input's dtype: no NCHW copy on the way in or out, as PyTorch's CUDA
    group norm makes for such inputs. Statistics in fp32 and in one pass: ``var_mean`` per channel
    over the spatial axes (one Welford reduction for inductor, whose backward needs no reduction of
    its own), combined per group exactly (equal counts: a group's variance is its channels' mean
    variance plus the variance of their means); the output is ``x * scale + shift`` with
    per-(item, channel) factors, so every pass reads the input in its own memory order. Compiled on
    an H200 this ran the image step 2% faster than two passes (benchmarks/RESULTS.md). Any other
    input goes through ``F.group_norm``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _channels_last(x):
            return super().forward(x)
        n, c, g = x.shape[0], x.shape[1], self.num_groups
        ones = (1,) * (x.dim() - 2)
        xf = x.float()
        var_c, mean_c = torch.var_mean(xf, dim=tuple(range(2, x.dim())), correction=0)   # (N, C)
        mean_cg = mean_c.view(n, g, c // g)
        var_g = var_c.view(n, g, c // g).mean(-1) + mean_cg.var(-1, correction=0)
        mean = mean_cg.mean(-1, keepdim=True).expand(n, g, c // g).reshape(n, c)
        scale = torch.rsqrt(var_g + self.eps)[:, :, None].expand(n, g, c // g).reshape(n, c)
        if self.affine:
            scale = scale * self.weight.float()
            shift = self.bias.float() - mean * scale
        else:
            shift = -mean * scale
        return (xf * scale.view(n, c, *ones) + shift.view(n, c, *ones)).to(x.dtype)


def _channels_last(x: torch.Tensor) -> bool:
    """A 4D/5D tensor laid out channels-last (and not also NCHW-contiguous, e.g. with C = 1)."""
    if x.dim() == 4:
        fmt = torch.channels_last
    elif x.dim() == 5:
        fmt = torch.channels_last_3d
    else:
        return False
    return x.is_contiguous(memory_format=fmt) and not x.is_contiguous()


def norm(channels: int) -> nn.GroupNorm:
    return GroupNorm(num_groups(channels), channels, eps=1e-6)


def pad_grid(x: torch.Tensor, pads: Sequence[tuple[int, int]], periodic: bool) -> torch.Tensor:
    """Pad the spatial axes of (B, C, *grid) by ``pads`` (one (low, high) per axis, in order)."""
    pads = list(pads)
    if periodic and pads[-1] != (0, 0):
        lo, hi = pads[-1]
        width = x.shape[-1]
        if lo > width or hi > width:
            raise ValueError(f"circular padding of {max(lo, hi)} exceeds the periodic axis ({width})")
        x = torch.cat([x[..., width - lo :], x, x[..., :hi]], dim=-1)
        pads[-1] = (0, 0)
    flat = [v for lo_hi in reversed(pads) for v in lo_hi]
    return F.pad(x, flat) if any(flat) else x


class _PaddedConv:
    """Mixin: a convolution padded by ``pads`` (one (low, high) per axis), circularly along the
    last axis when ``periodic``. Symmetric zero padding is left to the convolution itself (no
    padded copy of the input, forward or backward); only circular and one-sided padding are
    applied to the input first."""

    def _setup_padding(self, pads: Sequence[tuple[int, int]], periodic: bool) -> None:
        self.pads = tuple(tuple(p) for p in pads)
        self.periodic = periodic
        last = len(self.pads) - 1
        native = [lo if lo == hi and not (periodic and i == last) else 0 for i, (lo, hi) in enumerate(self.pads)]
        self.padding = tuple(native)
        self._explicit_pads = tuple((0, 0) if n else p for n, p in zip(native, self.pads))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(pad_grid(x, self._explicit_pads, self.periodic), self.weight, self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", pads={self.pads}, periodic={self.periodic}"


class PaddedConv2d(_PaddedConv, nn.Conv2d):
    pass


class PaddedConv3d(_PaddedConv, nn.Conv3d):
    pass


def conv(dims: int, cin: int, cout: int, kernel: int = 3, stride: int = 1, periodic: bool = False,
         pads: Sequence[tuple[int, int]] | None = None) -> nn.Module:
    """A conv whose padding keeps the grid ("same" for stride 1) unless ``pads`` is given."""
    if dims not in (2, 3):
        raise ValueError(f"only 2D and 3D grids are supported, got {dims}D")
    if pads is None:
        pads = [(kernel // 2, kernel // 2)] * dims
    cls = PaddedConv2d if dims == 2 else PaddedConv3d
    layer = cls(cin, cout, kernel, stride=stride, padding=0)
    layer._setup_padding(pads, periodic)
    return layer


def downsampled_size(size: Sequence[int], padding: str = "symmetric") -> tuple[int, ...]:
    """Grid size after one stride-2 3×3 conv: ceil(n/2) with symmetric padding, floor with asymmetric."""
    if padding == "symmetric":
        return tuple((n + 1) // 2 for n in size)
    return tuple(max(n // 2, 1) for n in size)


def level_sizes(size: Sequence[int], levels: int, padding: str = "symmetric") -> list[tuple[int, ...]]:
    """Grid size at each resolution level of an encoder with ``levels - 1`` downsamples."""
    sizes = [tuple(size)]
    for _ in range(levels - 1):
        sizes.append(downsampled_size(sizes[-1], padding))
    return sizes


def resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Resize a feature map: area average when shrinking, nearest copies otherwise."""
    size = tuple(size)
    if tuple(x.shape[2:]) == size:
        return x
    if all(s <= n for s, n in zip(size, x.shape[2:])):
        pool = F.adaptive_avg_pool2d if x.dim() == 4 else F.adaptive_avg_pool3d
        return pool(x, size)
    return F.interpolate(x, size=size, mode="nearest")


class ResnetBlock(nn.Module):
    """GroupNorm → SiLU → conv, twice, plus a residual; an optional time embedding is added in between."""

    def __init__(self, dims: int, cin: int, cout: int | None = None, *, temb_channels: int | None = None,
                 dropout: float = 0.0, periodic: bool = False):
        super().__init__()
        cout = cout or cin
        self.norm1 = norm(cin)
        self.conv1 = conv(dims, cin, cout, periodic=periodic)
        self.time_emb_proj = nn.Linear(temb_channels, cout) if temb_channels else None
        self.norm2 = norm(cout)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = conv(dims, cout, cout, periodic=periodic)
        self.conv_shortcut = conv(dims, cin, cout, kernel=1) if cin != cout else None

    def forward(self, x: torch.Tensor, temb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        if self.time_emb_proj is not None:
            h = h + self.time_emb_proj(F.silu(temb)).reshape(*h.shape[:2], *([1] * (h.dim() - 2)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        skip = self.conv_shortcut(x) if self.conv_shortcut is not None else x
        return skip + h


class Attention(nn.Module):
    """Multi-head self-attention over the positions of one grid; never across the batch."""

    def __init__(self, channels: int, heads: int = 1):
        super().__init__()
        if channels % heads:
            raise ValueError(f"attention: {channels} channels do not split into {heads} heads")
        self.heads = heads
        self.group_norm = norm(channels)
        self.to_q = nn.Linear(channels, channels)
        self.to_k = nn.Linear(channels, channels)
        self.to_v = nn.Linear(channels, channels)
        self.to_out = nn.Sequential(nn.Linear(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, *grid = x.shape
        h = self.group_norm(x).reshape(b, c, -1).transpose(1, 2)  # (B, N, C)

        def split(t):
            return t.reshape(b, -1, self.heads, c // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(self.to_q(h)), split(self.to_k(h)), split(self.to_v(h)))
        out = self.to_out(out.transpose(1, 2).reshape(b, -1, c))
        return x + out.transpose(1, 2).reshape(b, c, *grid)


class Downsample(nn.Module):
    """Stride-2 3×3 conv. ``symmetric`` pads 1 each side (ceil sizes); ``asymmetric`` pads only
    after (floor sizes), as the diffusers/LDM autoencoders do, so their weights keep their meaning."""

    def __init__(self, dims: int, channels: int, *, padding: str = "symmetric", periodic: bool = False):
        super().__init__()
        pads = [(1, 1)] * dims if padding == "symmetric" else [(0, 1)] * dims
        self.conv = conv(dims, channels, channels, stride=2, periodic=periodic, pads=pads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour upsampling to an exact size (×2 unless told), then a 3×3 conv."""

    def __init__(self, dims: int, channels: int, *, periodic: bool = False):
        super().__init__()
        self.conv = conv(dims, channels, channels, periodic=periodic)

    def forward(self, x: torch.Tensor, size: Sequence[int] | None = None) -> torch.Tensor:
        size = tuple(size) if size is not None else tuple(2 * n for n in x.shape[2:])
        return self.conv(F.interpolate(x, size=size, mode="nearest"))


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (B,) timesteps → (B, dim): cos half then sin half, as in ADM/LDM."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class MidBlock(nn.Module):
    """ResnetBlock → optional self-attention → ResnetBlock, at the lowest resolution."""

    def __init__(self, dims: int, channels: int, *, attention: bool = True, heads: int = 1,
                 temb_channels: int | None = None, dropout: float = 0.0, periodic: bool = False):
        super().__init__()
        kw = dict(temb_channels=temb_channels, dropout=dropout, periodic=periodic)
        self.resnets = nn.ModuleList([ResnetBlock(dims, channels, **kw), ResnetBlock(dims, channels, **kw)])
        self.attentions = nn.ModuleList([Attention(channels, heads)] if attention else [])

    def forward(self, x: torch.Tensor, temb: torch.Tensor | None = None) -> torch.Tensor:
        x = self.resnets[0](x, temb)
        for attn in self.attentions:
            x = attn(x)
        return self.resnets[1](x, temb)


class Level(nn.Module):
    """One resolution level: ``resnets``, optional ``attentions`` and a resampler (or none)."""

    def __init__(self):
        super().__init__()
        self.resnets = nn.ModuleList()
        self.attentions = nn.ModuleList()


# -- the level stacks of the autoencoders (the UNet's carry skips and attention: built in priors/unet.py)
def resnet_levels(dims: int, chans: Sequence[int], blocks: int, *, down: bool, padding: str = "symmetric",
                  dropout: float = 0.0, periodic: bool = False) -> tuple[nn.ModuleList, int]:
    """An autoencoder's level stack: per level ``blocks`` ResnetBlocks to its width, then a stride-2
    downsample (``down``: an encoder's ``down_blocks``) or an upsample (a decoder's ``up_blocks``),
    none after the last level. Starts at ``chans[0]`` channels; returns the levels and the channels
    they end with."""
    levels, ch = nn.ModuleList(), chans[0]
    for i, out in enumerate(chans):
        level = Level()
        for _ in range(blocks):
            level.resnets.append(ResnetBlock(dims, ch, out, dropout=dropout, periodic=periodic))
            ch = out
        if i < len(chans) - 1 and down:
            level.downsamplers = nn.ModuleList([Downsample(dims, ch, padding=padding, periodic=periodic)])
        elif i < len(chans) - 1:
            level.upsamplers = nn.ModuleList([Upsample(dims, ch, periodic=periodic)])
        levels.append(level)
    return levels, ch


def run_down(levels: nn.ModuleList, h: torch.Tensor) -> torch.Tensor:
    for level in levels:
        for block in level.resnets:
            h = block(h)
        if hasattr(level, "downsamplers"):
            h = level.downsamplers[0](h)
    return h


def run_up(levels: nn.ModuleList, h: torch.Tensor, sizes: Sequence[Sequence[int]]) -> torch.Tensor:
    """``sizes[i]`` is level i's grid; each upsample goes to the next level's exact size."""
    for i, level in enumerate(levels):
        for block in level.resnets:
            h = block(h)
        if hasattr(level, "upsamplers"):
            h = level.upsamplers[0](h, size=sizes[i + 1])
    return h


def _positive_multipliers(v: list[int]) -> list[int]:
    if any(m < 1 for m in v):
        raise ValueError("every channel multiplier must be >= 1")
    return v


# The ``channel_mult`` field of the configs of networks built from these blocks.
ChannelMult = Annotated[list[int], pydantic.AfterValidator(_positive_multipliers)]

"""The Hyper-Transformer Decoder (HD) of LDMI: latent grid → INR weights through a Transformer.

Latent patches become data tokens; learned weight tokens cross-attend to them; each weight
token is turned into one column that modulates a group of columns of a learned base weight W_b
(eq. 5 of Peis et al. 2025, "scale"; Trans-INR's "normalize" is the alternative).
"""
from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from pydantic import Field
from torch import nn

from ..errors import ConfigError
from ..inrs.base import INR
from ..registry import PartConfig
from ..registry import hypernets as hypernet_registry
from .attention import Attention, Transformer, WindowedAttention
from .base import Hypernet


class HDConfig(PartConfig):
    dim: int = Field(192, ge=1)
    encoder_depth: int = Field(6, ge=0)
    decoder_depth: int = Field(6, ge=1)
    n_heads: int = Field(6, ge=1)
    head_dim: int = Field(48, ge=1)
    ff_dim: int = Field(768, ge=1)
    patch_size: int = Field(2, ge=1)
    tokenizer_heads: int = Field(4, ge=1)
    tokenizer_head_dim: int = Field(32, ge=1)
    n_groups: int = Field(64, ge=1, description="weight tokens per INR layer (at most its fan_out)")
    update: Literal["scale", "normalize"] = "scale"
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    tokenizer: Literal["standard", "reference"] = Field(
        "standard", description="standard: pre-norm residual local and global attention; reference: the LDMI "
        "code's (no residuals or LayerNorms, a full-width local attention, samples kept apart)")


class LatentTokenizer(nn.Module):
    """(B, C, *grid) → (B, N, dim): p×p(×p) patches, linear embedding, learned positions, then a
    windowed attention over p consecutive tokens and a global attention (pre-norm residuals)."""

    def __init__(self, latent_shape: tuple[int, ...], patch_size: int, dim: int, n_heads: int, head_dim: int,
                 dropout: float = 0.0, layout: str = "standard"):
        super().__init__()
        channels, *grid = latent_shape
        p = patch_size
        self.patch_size = p
        self.grid = tuple(grid)
        self.coarse = tuple(-(-g // p) for g in grid)  # grid padded up to a multiple of p, in patches
        self.n_tokens = math.prod(self.coarse)
        self.embed = nn.Linear(channels * p ** len(grid), dim)
        self.residual = layout == "standard"
        if self.residual:
            self.pos = nn.Parameter(torch.randn(1, self.n_tokens, dim) * 0.02)
            self.norm_local = nn.LayerNorm(dim)
            self.local_attn = WindowedAttention(dim, p, n_heads, head_dim, dropout)
            self.norm_global = nn.LayerNorm(dim)
            self.global_attn = Attention(dim, n_heads, head_dim, dropout)
            return
        # The reference layout: x = global(local(embed + pos)), no residuals, no LayerNorms; its
        # local attention is an nn.MultiheadAttention(dim, n_heads): dim-wide heads, q/k/v biases.
        if dim % n_heads:
            raise ConfigError(f"hypernets/hd: tokenizer 'reference' needs dim ({dim}) divisible by tokenizer_heads ({n_heads})")
        self.pos = nn.Parameter(torch.randn(1, self.n_tokens, dim))
        self.local_attn = WindowedAttention(dim, p, n_heads, dim // n_heads, qkv_bias=True)
        self.global_attn = Attention(dim, n_heads, head_dim)

    def patchify(self, z: torch.Tensor) -> torch.Tensor:
        """(B, C, *grid) → (B, N, C·p^k), patches in C order of the patch grid."""
        p, k = self.patch_size, len(self.grid)
        pad = []
        for g, c in zip(reversed(self.grid), reversed(self.coarse)):
            pad += [0, c * p - g]
        if any(pad):
            z = F.pad(z, pad)
        # 2D: "b c (g0 p0) (g1 p1) -> b (g0 g1) (c p0 p1)"; 3D adds one more axis pair
        grid = " ".join(f"(g{i} p{i})" for i in range(k))
        tokens = " ".join(f"g{i}" for i in range(k))
        patch = " ".join(f"p{i}" for i in range(k))
        return rearrange(z, f"b c {grid} -> b ({tokens}) (c {patch})", **{f"p{i}": p for i in range(k)})

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.embed(self.patchify(z)) + self.pos
        if not self.residual:
            return self.global_attn(self.local_attn(x))
        x = x + self.local_attn(self.norm_local(x))
        return x + self.global_attn(self.norm_global(x))


@hypernet_registry.register("hd", config=HDConfig, description="Hyper-Transformer Decoder (LDMI): latent grid → INR weights")
class HyperTransformerDecoder(Hypernet):
    def __init__(self, cfg: HDConfig, *, inr: INR, latent_shape: tuple[int, ...]):
        super().__init__()
        latent_shape = tuple(int(s) for s in latent_shape)
        if len(latent_shape) < 2:
            raise ConfigError(f"hypernets/hd: latent_shape must be (C, h, w[, t]), got {latent_shape}")
        self.config, self.inr, self.latent_shape = cfg, inr, latent_shape
        self.tokenizer = LatentTokenizer(latent_shape, cfg.patch_size, cfg.dim, cfg.tokenizer_heads, cfg.tokenizer_head_dim,
                                        cfg.dropout, cfg.tokenizer)
        self.transformer = Transformer(cfg.dim, cfg.encoder_depth, cfg.decoder_depth, cfg.n_heads, cfg.head_dim, cfg.ff_dim, cfg.dropout)

        init = inr.init_params()
        self.base_weights = nn.ParameterDict()
        self.token_heads = nn.ModuleDict()
        self.token_ranges: dict[str, tuple[int, int]] = {}
        n = 0
        for name, (fan_in1, fan_out) in inr.param_shapes.items():
            g = min(cfg.n_groups, fan_out)
            if fan_out % g:
                raise ConfigError(f"hypernets/hd: INR layer '{name}' has {fan_out} outputs, not a multiple of n_groups={g}")
            self.base_weights[name] = nn.Parameter(init[name].clone())
            self.token_heads[name] = nn.Sequential(nn.LayerNorm(cfg.dim), nn.Linear(cfg.dim, fan_in1 - 1))
            self.token_ranges[name] = (n, n + g)
            n += g
        self.weight_tokens = nn.Parameter(torch.randn(n, cfg.dim))

    @property
    def n_weight_tokens(self) -> int:
        return self.weight_tokens.shape[0]

    def forward(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        self.check_latent(z)
        b = z.shape[0]
        tokens = self.transformer(self.tokenizer(z), self.weight_tokens.expand(b, -1, -1))
        params = {}
        for name, (lo, hi) in self.token_ranges.items():
            wb = self.base_weights[name]
            w, bias = wb[:-1], wb[-1:]
            cols = self.token_heads[name](tokens[:, lo:hi]).transpose(1, 2)  # (B, fan_in, g)
            # token j modulates columns j, j+g, j+2g, ... (the layout of the reference code)
            mod = cols.repeat(1, 1, w.shape[1] // cols.shape[2])
            if self.config.update == "scale":
                w = w * (1 + mod)
            else:
                w = F.normalize(w * mod, dim=1)
            params[name] = torch.cat([w, bias.expand(b, -1, -1)], dim=1)
        return params

    def last_layer(self) -> torch.Tensor:
        """The learned base weight of the INR's output layer (what the decoded values depend on last)."""
        return self.base_weights[list(self.token_ranges)[-1]]

    def parameter_report(self) -> dict[str, int]:
        def count(ps) -> int:
            return sum(p.numel() for p in ps if p.requires_grad)

        rep = {
            "transformer": count(self.transformer.parameters()),
            "tokenizer": count(self.tokenizer.parameters()),
            "base_weights": count(self.base_weights.parameters()),
            "weight_tokens": self.weight_tokens.numel() if self.weight_tokens.requires_grad else 0,
            "token_heads": count(self.token_heads.parameters()),
        }
        # what the paper counts (its code prints this sum): everything except the token heads
        rep["reference_total"] = rep["transformer"] + rep["tokenizer"] + rep["base_weights"] + rep["weight_tokens"]
        rep["total"] = count(self.parameters())
        return rep

"""Pre-norm Transformer blocks on ``scaled_dot_product_attention``, batch-first everywhere.

Every attention here attends only within a sample: batch rows never exchange information
(the reference LDMI tokenizer's local attention feeds a batch-first tensor to a sequence-first
``nn.MultiheadAttention`` and so mixes samples; a test pins that ours does not).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class Attention(nn.Module):
    """Multi-head attention: q and kv projections without bias (unless ``qkv_bias``, as
    ``nn.MultiheadAttention``), output projection with bias."""

    def __init__(self, dim: int, n_heads: int, head_dim: int, dropout: float = 0.0, qkv_bias: bool = False):
        super().__init__()
        self.n_heads, self.head_dim = n_heads, head_dim
        inner = n_heads * head_dim
        self.to_q = nn.Linear(dim, inner, bias=qkv_bias)
        self.to_kv = nn.Linear(dim, 2 * inner, bias=qkv_bias)
        self.to_out = nn.Linear(inner, dim)
        self.dropout = nn.Dropout(dropout)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        return rearrange(t, "b n (h d) -> b h n d", h=self.n_heads)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, N, dim) attends to context (B, M, dim) (itself if None); mask: bool, True = may attend."""
        context = x if context is None else context
        q = self._heads(self.to_q(x))
        k, v = (self._heads(t) for t in self.to_kv(context).chunk(2, dim=-1))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out = rearrange(out, "b h n d -> b n (h d)")
        return self.dropout(self.to_out(out))


class WindowedAttention(nn.Module):
    """Self-attention inside windows of ``window`` consecutive tokens of the same sample."""

    def __init__(self, dim: int, window: int, n_heads: int, head_dim: int, dropout: float = 0.0, qkv_bias: bool = False):
        super().__init__()
        self.window = window
        self.attn = Attention(dim, n_heads, head_dim, dropout, qkv_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        w = self.window
        n_win = -(-n // w)
        pad = n_win * w - n
        mask = None
        if pad:
            # the last window is short: pad it and keep the padding out of every key set
            x = F.pad(x, (0, 0, 0, pad))
            valid = torch.arange(n_win * w, device=x.device) < n
            mask = valid.view(n_win, 1, 1, w).repeat(b, 1, 1, 1)
        # (B, N, d) → (B·windows, w, d): windows of one sample stay in consecutive batch rows
        out = self.attn(rearrange(x, "b (k w) d -> (b k) w d", w=w), mask=mask)
        return rearrange(out, "(b k) w d -> b (k w) d", b=b)[:, :n]


class FeedForward(nn.Sequential):
    def __init__(self, dim: int, ff_dim: int, dropout: float = 0.0):
        super().__init__(nn.Linear(dim, ff_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff_dim, dim), nn.Dropout(dropout))


class EncoderLayer(nn.Module):
    """x + Attn(LN x), then x + FF(LN x)."""

    def __init__(self, dim: int, n_heads: int, head_dim: int, ff_dim: int, dropout: float = 0.0):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, n_heads, head_dim, dropout)
        self.norm2, self.ff = nn.LayerNorm(dim), FeedForward(dim, ff_dim, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ff(self.norm2(x))


class DecoderLayer(nn.Module):
    """Self-attention, cross-attention to the encoder memory, feed-forward; each pre-norm residual."""

    def __init__(self, dim: int, n_heads: int, head_dim: int, ff_dim: int, dropout: float = 0.0):
        super().__init__()
        self.norm1, self.self_attn = nn.LayerNorm(dim), Attention(dim, n_heads, head_dim, dropout)
        self.norm2, self.cross_attn = nn.LayerNorm(dim), Attention(dim, n_heads, head_dim, dropout)
        self.norm3, self.ff = nn.LayerNorm(dim), FeedForward(dim, ff_dim, dropout)

    def forward(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.norm1(x))
        x = x + self.cross_attn(self.norm2(x), context=memory)
        return x + self.ff(self.norm3(x))


class Transformer(nn.Module):
    """Encoder over data tokens, decoder over target tokens cross-attending to the encoded data."""

    def __init__(self, dim: int, encoder_depth: int, decoder_depth: int, n_heads: int, head_dim: int, ff_dim: int, dropout: float = 0.0):
        super().__init__()
        self.encoder = nn.ModuleList(EncoderLayer(dim, n_heads, head_dim, ff_dim, dropout) for _ in range(encoder_depth))
        self.decoder = nn.ModuleList(DecoderLayer(dim, n_heads, head_dim, ff_dim, dropout) for _ in range(decoder_depth))

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        for layer in self.encoder:
            src = layer(src)
        for layer in self.decoder:
            tgt = layer(tgt, src)
        return tgt

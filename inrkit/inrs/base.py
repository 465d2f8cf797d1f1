"""The contract of an INR family: a functional network evaluating B different INRs at once."""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


class INR(nn.Module):
    """Functional INR. Holds no per-item weights, only fixed buffers (e.g. Fourier frequencies).

    ``param_shapes``: ordered name → ``(fan_in + 1, fan_out)``; the last row of each matrix is
    the bias, so a layer is one batched product ``(B, N, in+1) @ (B, in+1, out)``.
    """

    in_dim: int
    out_dim: int
    param_shapes: "OrderedDict[str, tuple[int, int]]"

    def init_params(self) -> dict[str, torch.Tensor]:
        """One INR's initial parameters (the family's own initialisation), unbatched."""
        raise NotImplementedError

    def forward(self, params: dict[str, torch.Tensor], coords: torch.Tensor) -> torch.Tensor:
        """params: name → (B, in+1, out); coords (B, N, d) or shared (N, d) → (B, N, out)."""
        raise NotImplementedError

    @property
    def num_params(self) -> int:
        return sum(a * b for a, b in self.param_shapes.values())

    def evaluate(self, params: dict[str, torch.Tensor], coords: torch.Tensor, chunk: int | None = 65536) -> torch.Tensor:
        """``forward`` over chunks of coordinates, so that memory stays bounded at any resolution."""
        n = coords.shape[-2]
        if chunk is None or n <= chunk:
            return self(params, coords)
        outs = [self(params, coords[..., i : i + chunk, :]) for i in range(0, n, chunk)]
        return torch.cat(outs, dim=-2)


def with_bias(x: torch.Tensor) -> torch.Tensor:
    """Append the constant-1 column that multiplies each matrix's bias row."""
    return torch.cat([x, torch.ones_like(x[..., :1])], dim=-1)


def batched_linear(x: torch.Tensor, wb: torch.Tensor) -> torch.Tensor:
    """(B, N, in) @ (B, in+1, out) with the bias row; shared (N, in) inputs are broadcast."""
    if x.dim() == 2:
        x = x.unsqueeze(0).expand(wb.shape[0], -1, -1)
    return torch.baddbmm(wb[:, -1:, :], x, wb[:, :-1, :])

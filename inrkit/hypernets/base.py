"""The contract of a hypernetwork: latent z → the parameters of INRs of a given family."""
from __future__ import annotations

import torch
from torch import nn

from ..inrs.base import INR


class Hypernet(nn.Module):
    """Built as ``cls(config, inr=INR, latent_shape=(C, h, w[, t]))``; owns ``self.inr``.

    ``forward(z)`` returns a dict of tensors (the INR parameters, batched, plus anything the
    family-specific ``evaluate`` needs); ``evaluate(params, coords)`` → (B, N, c) values.
    """

    inr: INR

    def evaluate(self, params: dict[str, torch.Tensor], coords: torch.Tensor, chunk: int | None = 65536) -> torch.Tensor:
        return self.inr.evaluate(params, coords, chunk=chunk)

    def decode(self, z: torch.Tensor, coords: torch.Tensor, chunk: int | None = 65536) -> torch.Tensor:
        return self.evaluate(self(z), coords, chunk=chunk)

    def parameter_report(self) -> dict[str, int]:
        """Parameter counts by part; ``total`` counts every trainable parameter of the hypernet."""
        return {"total": sum(p.numel() for p in self.parameters() if p.requires_grad)}

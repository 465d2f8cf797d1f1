"""The contract of a hypernetwork: latent z → the parameters of INRs of a given family."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import InrkitError
from ..inrs.base import INR


class Hypernet(nn.Module):
    """Built as ``cls(config, inr=INR, latent_shape=(C, h, w[, t]))``; owns ``self.inr``.

    ``forward(z)`` returns a dict of tensors (the INR parameters, batched, plus anything the
    family-specific ``evaluate`` needs); ``evaluate(params, coords)`` → (B, N, c) values.
    """

    inr: INR
    latent_shape: tuple[int, ...]

    def check_latent(self, z: torch.Tensor) -> None:
        """A latent batch of the wrong shape is a user error (a mismatched checkpoint or preset)."""
        if tuple(z.shape[1:]) != tuple(self.latent_shape):
            shape = ", ".join(map(str, self.latent_shape))
            raise InrkitError(f"hypernets/{getattr(self, 'registry_name', type(self).__name__)}: expected latents of shape (B, {shape}), got {tuple(z.shape)}")

    def evaluate(self, params: dict[str, torch.Tensor], coords: torch.Tensor, chunk: int | None = 65536) -> torch.Tensor:
        return self.inr.evaluate(params, coords, chunk=chunk)

    def decode(self, z: torch.Tensor, coords: torch.Tensor, chunk: int | None = 65536) -> torch.Tensor:
        return self.evaluate(self(z), coords, chunk=chunk)

    def parameter_report(self) -> dict[str, int]:
        """Parameter counts by part; ``total`` counts every trainable parameter of the hypernet."""
        return {"total": sum(p.numel() for p in self.parameters() if p.requires_grad)}

"""The standard normal prior N(0, I): the VAE baseline's prior, with nothing to train."""
from __future__ import annotations

import torch

from ..registry import PartConfig, priors
from .base import Prior
from .guided import optimise_latents
from .samplers import randn


class GaussianPriorConfig(PartConfig):
    pass


@priors.register("gaussian", config=GaussianPriorConfig, description="standard normal N(0, I); nothing to train")
class GaussianPrior(Prior):
    guidance_method = "latent optimisation"

    def __init__(self, config: GaussianPriorConfig, *, latent_shape):
        super().__init__()
        self.config = config
        self.latent_shape = tuple(int(n) for n in latent_shape)
        # No parameters: this buffer only tells sample() which device the prior was moved to.
        self.register_buffer("_device_probe", torch.zeros(()), persistent=False)

    def loss(self, z: torch.Tensor) -> torch.Tensor:
        """Zero, yet safe to ``backward()`` alone or in a sum: a leaf that requires grad.

        Not ``(z * 0).sum()``: a NaN in z would turn that into NaN and poison the total loss.
        """
        return torch.zeros((), device=z.device, dtype=z.dtype, requires_grad=True)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.loss(z)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, **kwargs) -> torch.Tensor:
        """n draws from N(0, I); sampler keywords (steps, eta, ...) are accepted and ignored."""
        return randn((n, *self.latent_shape), generator, self._device_probe.device)

    def guided_sample(self, noise: torch.Tensor, loss, *, steps: int, guidance: float, use_ema: bool = True,
                      clip: float | None = None) -> torch.Tensor:
        """No sampler to steer: a MAP latent from the noise, guidance·loss(z) + ½‖z‖² (``steps`` Adam steps)."""
        return optimise_latents(noise.to(self._device_probe.device), loss, steps, guidance)

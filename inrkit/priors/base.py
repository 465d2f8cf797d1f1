"""The contract of a latent prior: built as ``cls(config, latent_shape=(C, *grid))``."""
from __future__ import annotations

from typing import Callable, ClassVar

import torch
from torch import nn

from ..errors import ConfigError, DataError

# z (B, *latent_shape), unscaled → a per-item loss (B,) saying how far its decode is from observations
GuideLoss = Callable[[torch.Tensor], torch.Tensor]


class Prior(nn.Module):
    latent_shape: tuple[int, ...]
    # How this prior conditions on observations (``guided_sample``); None: it cannot. A new prior
    # that implements ``guided_sample`` names its method here ("dps-ddim", "latent optimisation").
    guidance_method: ClassVar[str | None] = None

    @classmethod
    def guidable(cls) -> bool:
        return cls.guidance_method is not None

    def loss(self, z: torch.Tensor) -> torch.Tensor:
        """Training loss of the prior on a batch of latents (B, *latent_shape) → scalar."""
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, **kwargs) -> torch.Tensor:
        """n latents (n, *latent_shape); samplers take their own keyword arguments."""
        raise NotImplementedError

    def update_ema(self) -> None:
        """Called after each optimiser step of the prior; priors without EMA ignore it."""

    def guided_sample(self, noise: torch.Tensor, loss: GuideLoss, *, steps: int, guidance: float,
                      use_ema: bool = True, clip: float | None = None) -> torch.Tensor:
        """Latents (B, *latent_shape), unscaled, drawn from the prior conditioned on observations.

        ``noise`` is standard normal (B, *latent_shape), the starting point (drawn by the caller so
        that one seed gives the same result whatever the batching); ``loss(z)`` is each item's
        misfit to its observations, differentiable in z; ``guidance`` scales its pull (0: the
        unconditional draw from the same noise).
        """
        raise ConfigError(f"prior '{type(self).__name__}' cannot be guided by observations (it implements no"
                          " guided_sample); train the run with a diffusion or gaussian prior")

    def use_ema_weights(self) -> None:
        """Copy the EMA weights into the live weights (``load_run(..., weights='ema')``)."""
        raise ConfigError(f"priors/{getattr(self, 'registry_name', type(self).__name__)}: this prior keeps no EMA weights")


class ScaledPrior(Prior):
    """A prior that works on standardised latents: ``scale_factor`` = 1/std(z) is stored once by
    ``set_scale`` (LDM's habit), from the first batch of training latents; ``loss`` and
    ``sample`` scale and unscale, so the prior's input and output live in the encoder's space."""

    def _register_scale(self) -> None:
        self.register_buffer("scale_factor", torch.ones(()))
        self.register_buffer("scale_is_set", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def set_scale(self, z: torch.Tensor, force: bool = False) -> float:
        """scale_factor = 1/std(z) over every element (LDM); kept once set unless ``force``."""
        if bool(self.scale_is_set) and not force:
            return float(self.scale_factor)
        std = z.detach().float().std()
        if not torch.isfinite(std) or std <= 0:
            raise DataError(f"priors/{self.registry_name}: cannot standardise latents with std {float(std)}")
        self.scale_factor.fill_(1.0 / float(std))
        self.scale_is_set.fill_(True)
        return float(self.scale_factor)

"""LDMI: an encoder and a hypernetwork trained as a VAE over INRs, and a latent prior over z.

Everything is assembled from registered parts: domain → encoder(in_channels, grid_shape) →
latent grid z → hypernetwork(INR family) → INR parameters → values at any coordinates.
Stage ``vae`` trains encoder + hypernetwork on eq. 6, stage ``prior`` trains the latent prior
on the frozen encoder's latents (eq. 7). The model speaks the generic trainer's protocol
(``inrkit.train.trainer``); ``fit`` runs it into a run directory.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from inrkit.domain import random_indices
from inrkit.recipe import register_recipe
from inrkit.registry import models

from .config import RECORDS, LDMIConfig, LDMITrainConfig, check_records
from .latent_model import LatentModel, count_params
from .presets import load_preset


@models.register("ldmi", config=LDMIConfig, description="LDMI: latent diffusion over INRs with a hypernetwork decoder (HD)")
class LDMI(LatentModel):
    model_name = "ldmi"
    config_class = LDMIConfig

    def _build_decoder(self, config: LDMIConfig) -> None:
        self.hypernet = config.build("hypernet", inr=config.build("inr"), latent_shape=self.latent_shape)

    def vae_modules(self) -> tuple[nn.Module, ...]:
        return (self.encoder, self.hypernet)

    # -- construction ----------------------------------------------------------------------
    def _last_layer(self):
        last = getattr(self.hypernet, "last_layer", None)
        return last() if last is not None else None

    @property
    def inr(self):
        return self.hypernet.inr

    def parameter_report(self) -> dict[str, Any]:
        return {
            "encoder": count_params(self.encoder),
            "hypernet": self.hypernet.parameter_report(),
            "prior": count_params(self.prior),
            "inr_params": self.inr.num_params,
            "latent_shape": list(self.latent_shape),
        }

    # -- the trainer's protocol ----------------------------------------------------------------
    def vae_loss(self, x: torch.Tensor, points: int | None = None, generator: torch.Generator | None = None):
        """Eq. 6: NLL of the INR's values at (a random subset of) the grid + β·KL(q(z|x) ‖ N(0, I))."""
        mean, logvar = self.encoder(x)
        z = self.encoder.reparameterize(mean, logvar)
        coords, target = self._training_points(x, points, generator)
        return self._elbo(self._inr_values(z, coords), target, mean, logvar)

    def _training_points(self, x: torch.Tensor, points: int | None, generator: torch.Generator | None):
        """The grid coordinates and ``x``'s values there, or at a random subset of ``points`` of them."""
        coords, target = self.coords, self.domain.from_grid(x)
        idx = random_indices(coords.shape[0], points, generator, coords.device)
        if idx is not None:
            coords, target = coords[idx], target[:, idx]
        return coords, target

    def _inr_values(self, z: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        params = self.hypernet(z)
        # The INR runs in fp32 even under bf16 autocast: sin(ω0·x) with ω0 = 30 loses its phase
        # in bf16's 8-bit mantissa. The transformer producing the weights keeps the fast path.
        with torch.autocast(device_type=coords.device.type, enabled=False):
            params = {k: (v.float() if v.is_floating_point() else v) for k, v in params.items()}
            return self.hypernet.evaluate(params, coords, chunk=None)

    # -- inference -------------------------------------------------------------------------------
    @torch.no_grad()
    def decode_at(self, z: torch.Tensor, coords: torch.Tensor, chunk: int | None = None, batch_size: int = 16) -> torch.Tensor:
        """Latents → model-space values (B, N, c) at any coordinates (N, d), e.g. a dataset's own grid."""
        coords = coords.to(self.device, torch.float32)
        outs = [self.domain.postprocess(self.hypernet.decode(z[i : i + batch_size].to(self.device, torch.float32), coords,
                                                             chunk=chunk or self.config.chunk).float()).cpu()
                for i in range(0, z.shape[0], batch_size)]
        return torch.cat(outs) if outs else torch.empty(0, coords.shape[0], self.domain.channels)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, resolution=None, chunk: int | None = None, batch_size: int = 16) -> torch.Tensor:
        """Latents → model-space grids (B, c, *shape) at any resolution, in bounded memory."""
        shape = self.domain.resolve_resolution(resolution)
        coords = self.coords if resolution is None else self.domain.grid(shape).to(self.device, torch.float32)
        chunk = chunk or self.config.chunk
        outs = []
        for i in range(0, z.shape[0], batch_size):
            zb = z[i : i + batch_size].to(self.device, torch.float32)
            values = self.hypernet.decode(zb, coords, chunk=chunk)
            outs.append(self.domain.to_grid(self.domain.postprocess(values.float()), shape).cpu())
        return torch.cat(outs) if outs else torch.empty(0, self.domain.channels, *shape)


register_recipe("ldmi", train_config=LDMITrainConfig, presets=load_preset, records=RECORDS, check_records=check_records)

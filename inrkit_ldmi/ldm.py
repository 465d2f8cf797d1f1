"""A conventional latent diffusion model: encoder + convolutional decoder + latent prior.

The baseline LDMI is measured against, and the pre-trained model that hyper-transforming starts
from (``inrkit train ldmi --paradigm hyper-transform --from RUN``). Its run config is LDMI's
with ``model.decoder`` (any registered ``decoders`` part) in place of ``inr`` + ``hypernet``;
left out, the decoder mirrors the encoder (same name, the fields both configs share).

Training speaks the same stage protocol as LDMI (stage ``vae``: eq. 6 with the conv decoder;
stage ``prior``: eq. 7 on the frozen encoder's latents), and the prior, sampling, rendering and
evaluation plumbing is shared with LDMI through :class:`inrkit_ldmi.latent_model.LatentModel`:
an LDM is not an LDMI (it has no INR), so it does not inherit from one.
"""
from __future__ import annotations

from typing import Any, Literal

import pydantic
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from inrkit.domain import random_indices
from inrkit.errors import ConfigError
from inrkit.recipe import register_recipe
from inrkit.registry import get_registry, models

from .config import RECORDS, LDMITrainConfig, PartsConfig, check_records
from .latent_model import LatentModel, count_params


def mirror_decoder(encoder_spec: dict[str, Any]) -> dict[str, Any]:
    """The decoder spec that mirrors an encoder: the same registry name, the fields both share."""
    name = encoder_spec["name"]
    if name not in get_registry("decoders"):
        raise ConfigError(f"model.decoder: no decoder mirrors encoder '{name}'"
                          f" (decoders: {', '.join(get_registry('decoders').names())}); give model.decoder")
    fields = get_registry("decoders").get(name).config.model_fields
    return {"name": name, **{k: v for k, v in encoder_spec.items() if k in fields and k != "name"}}


class LDMConfig(PartsConfig):
    """The ``model`` section of an LDM run."""

    domain: dict[str, Any] | str
    encoder: dict[str, Any] | str
    decoder: dict[str, Any] | str | None = Field(None, description="a decoders part; null = mirror the encoder")
    prior: dict[str, Any] | str = "diffusion"
    likelihood: dict[str, Any] | str | None = None
    beta: float = Field(1e-4, ge=0.0, description="weight of the KL term of the VAE loss (eq. 6)")
    kl_reduction: Literal["mean", "sum"] = "mean"
    nll_reduction: Literal["mean", "sum"] = "mean"
    chunk: int = Field(65536, ge=1, description="unused by a conv decoder; kept so LDMI's plumbing reads it")

    @pydantic.model_validator(mode="after")
    def _resolve_parts(self):
        domain = self._validate_domain()
        self.encoder = self._validate("encoder", self.encoder)
        self.decoder = self._validate("decoder", self.decoder or mirror_decoder(self.encoder))
        self.prior = self._validate("prior", self.prior)
        self.likelihood = self._validate("likelihood", self.likelihood or domain.default_likelihood)
        return self


@models.register("ldm", config=LDMConfig, description="conventional latent diffusion: encoder + conv decoder + prior")
class LDM(LatentModel):
    model_name = "ldm"
    config_class = LDMConfig

    def _build_decoder(self, config: LDMConfig) -> None:
        self.decoder = config.build("decoder", out_channels=self.domain.channels,
                                    grid_shape=tuple(self.domain.grid_shape), latent_shape=self.latent_shape)

    def vae_modules(self) -> tuple[nn.Module, ...]:
        return (self.encoder, self.decoder)

    def parameter_report(self) -> dict[str, Any]:
        return {"encoder": count_params(self.encoder), "decoder": count_params(self.decoder),
                "prior": count_params(self.prior), "latent_shape": list(self.latent_shape)}

    # -- the trainer's protocol (stage vae differs from LDMI's only in the decoder) ----------
    def vae_loss(self, x: torch.Tensor, points: int | None = None, generator: torch.Generator | None = None):
        """Eq. 6 with the conv decoder: NLL at (a random subset of) the grid + β·KL(q(z|x) ‖ N(0, I))."""
        mean, logvar = self.encoder(x)
        z = self.encoder.reparameterize(mean, logvar)
        pred = self.domain.from_grid(self.decoder(z))
        target = self.domain.from_grid(x)
        # the decoder renders the whole grid anyway; the subset keeps the loss comparable to LDMI's
        idx = random_indices(target.shape[1], points, generator, target.device)
        if idx is not None:
            pred, target = pred[:, idx], target[:, idx]
        return self._elbo(pred, target, mean, logvar)

    # -- inference -------------------------------------------------------------------------
    @torch.no_grad()
    def decode(self, z: torch.Tensor, resolution=None, chunk: int | None = None, batch_size: int = 16) -> torch.Tensor:
        """Latents → model-space grids. A conv decoder knows one grid; other resolutions are
        interpolated from it (linear in each axis), which is the point LDMI's INRs improve on."""
        native = tuple(self.domain.grid_shape)
        shape = self.domain.resolve_resolution(resolution)
        outs = []
        for i in range(0, z.shape[0], batch_size):
            zb = z[i : i + batch_size].to(self.device, torch.float32)
            values = self.domain.postprocess(self.domain.from_grid(self.decoder(zb).float()))
            grid = self.domain.to_grid(values, native)
            if tuple(shape) != native:
                mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[len(native)]
                grid = F.interpolate(grid, size=tuple(shape), mode=mode, align_corners=False)
            outs.append(grid.cpu())
        return torch.cat(outs) if outs else torch.empty(0, self.domain.channels, *shape)


# -- the recipe: LDMI's, with the decoder in place of inr + hypernet -------------------------------
LDMI_ONLY = ("inr", "hypernet")


def ldm_from_ldmi_config(config: dict[str, Any]) -> dict[str, Any]:
    """An LDMI run config (a preset) → the LDM run config with the same encoder, prior and training."""
    out = dict(config)
    model = {k: v for k, v in (config.get("model") or {}).items() if k not in LDMI_ONLY and k != "name"}
    out["model"] = {"name": "ldm", **model}
    return out


# LDM runs have no presets of their own: an LDM is the baseline of the same-named LDMI preset.
register_recipe("ldm", train_config=LDMITrainConfig, base="ldmi", transform=ldm_from_ldmi_config, records=RECORDS,
                check_records=check_records)

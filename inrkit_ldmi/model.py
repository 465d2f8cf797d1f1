"""LDMI: an encoder and a hypernetwork trained as a VAE over INRs, and a latent prior over z.

Everything is assembled from registered parts: domain → encoder(in_channels, grid_shape) →
latent grid z → hypernetwork(INR family) → INR parameters → values at any coordinates.
Stage ``vae`` trains encoder + hypernetwork on eq. 6, stage ``prior`` trains the latent prior
on the frozen encoder's latents (eq. 7). The model speaks the generic trainer's protocol
(``inrkit.train.trainer``); ``fit`` runs it into a run directory.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn

from inrkit.errors import ConfigError
from inrkit.likelihoods import gaussian_kl
from inrkit.registry import models

from .config import LDMIConfig, build_part, resolve_run_config


@models.register("ldmi", config=LDMIConfig, description="LDMI: latent diffusion over INRs with a hypernetwork decoder (HD)")
class LDMI(nn.Module):
    def __init__(self, config: LDMIConfig):
        super().__init__()
        self.config = config
        self.domain = build_part("domains", config.domain)
        self.encoder = build_part("encoders", config.encoder, in_channels=self.domain.channels,
                                  grid_shape=tuple(self.domain.grid_shape))
        self.latent_shape = tuple(int(s) for s in self.encoder.latent_shape)
        inr = build_part("inrs", config.inr)
        self.hypernet = build_part("hypernets", config.hypernet, inr=inr, latent_shape=self.latent_shape)
        self.prior = build_part("priors", config.prior, latent_shape=self.latent_shape)
        self.likelihood = build_part("likelihoods", config.likelihood)
        # The training grid; not saved (the domain config rebuilds it).
        self.register_buffer("coords", self.domain.grid().float(), persistent=False)
        self.run_config: dict[str, Any] | None = None
        self._eval_data = None

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: dict[str, Any] | LDMIConfig) -> "LDMI":
        """From an ``LDMIConfig``, a model section, or a whole run config (kept for ``fit``)."""
        if isinstance(config, LDMIConfig):
            return cls(config)
        if "model" in config:
            run = resolve_run_config(config)
            spec = dict(run["model"])
        else:
            run = None
            spec = dict(config)
        name = spec.pop("name", "ldmi")
        if name != "ldmi":
            raise ConfigError(f"model.name: '{name}' is not an LDMI model")
        model = cls(models.validate(spec, name="ldmi"))
        model.run_config = run
        return model

    @classmethod
    def from_preset(cls, modality: str, preset: str = "paper", overrides: list[str] | None = None) -> "LDMI":
        from .presets import preset_config

        return cls.from_config(preset_config(modality, preset, overrides))

    @property
    def inr(self):
        return self.hypernet.inr

    @property
    def device(self) -> torch.device:
        return self.coords.device

    @property
    def stages(self) -> tuple[str, ...]:
        # A prior without parameters (the standard normal) has nothing to train.
        has_prior = any(True for _ in self.prior.parameters())
        return ("vae", "prior") if has_prior else ("vae",)

    def parameter_report(self) -> dict[str, Any]:
        def count(m):
            return sum(p.numel() for p in m.parameters())

        return {
            "encoder": count(self.encoder),
            "hypernet": self.hypernet.parameter_report(),
            "prior": count(self.prior),
            "inr_params": self.inr.num_params,
            "latent_shape": list(self.latent_shape),
        }

    # -- the trainer's protocol ----------------------------------------------------------------
    def stage_parameters(self, stage: str) -> Iterable[nn.Parameter]:
        if stage == "vae":
            return [*self.encoder.parameters(), *self.hypernet.parameters()]
        if stage == "prior":
            return list(self.prior.parameters())
        raise ConfigError(f"LDMI has no stage '{stage}' (stages: {', '.join(self.stages)})")

    def stage_loss(self, stage: str, batch, points: int | None = None, generator: torch.Generator | None = None):
        if stage == "vae":
            return self.vae_loss(batch, points=points, generator=generator)
        if stage == "prior":
            mean, logvar = batch
            z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
            loss = self.prior.loss(z)
            return loss, {}
        raise ConfigError(f"LDMI has no stage '{stage}'")

    def vae_loss(self, x: torch.Tensor, points: int | None = None, generator: torch.Generator | None = None):
        """Eq. 6: NLL of the INR's values at (a random subset of) the grid + β·KL(q(z|x) ‖ N(0, I))."""
        mean, logvar = self.encoder(x)
        z = self.encoder.reparameterize(mean, logvar)
        coords = self.coords
        target = self.domain.from_grid(x)
        if points is not None and points < coords.shape[0]:
            idx = torch.randperm(coords.shape[0], generator=generator)[:points].to(coords.device)
            coords, target = coords[idx], target[:, idx]
        params = self.hypernet(z)
        # The INR runs in fp32 even under bf16 autocast: sin(ω0·x) with ω0 = 30 loses its phase
        # in bf16's 8-bit mantissa. The transformer producing the weights keeps the fast path.
        with torch.autocast(device_type=coords.device.type, enabled=False):
            params = {k: (v.float() if v.is_floating_point() else v) for k, v in params.items()}
            pred = self.hypernet.evaluate(params, coords, chunk=None)
        nll = self.likelihood(pred, target)
        kl = gaussian_kl(mean, logvar, reduction=self.config.kl_reduction)
        loss = (nll + self.config.beta * kl).mean()
        return loss, {"nll": nll.mean(), "kl": kl.mean()}

    def prepare_stage(self, stage: str, dataset):
        if stage != "prior":
            return None
        mean, logvar = self.encode_dataset(dataset)
        # Latents standardised once from the (posterior means of the) training set, as LDM does.
        set_scale = getattr(self.prior, "set_scale", None)
        if set_scale is not None:
            set_scale(mean, force=True)
        return torch.utils.data.TensorDataset(mean.cpu(), logvar.cpu())

    def after_step(self, stage: str) -> None:
        if stage == "prior":
            self.prior.update_ema()

    def preview(self, stage: str, step: int, run_dir: Path) -> None:
        where = Path(run_dir) / "previews" / f"{stage}-{step}"
        n = self._train_cfg().get("n_renders", 8)
        self._render(where if stage == "prior" else None, where if stage == "vae" else None, n)

    def after_stage(self, stage: str, run_dir: Path | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self._eval_data is not None and stage == "vae":  # the prior stage leaves reconstructions as they are
            out["heldout"] = self.evaluate(self._eval_data)
        if run_dir is not None:
            run_dir = Path(run_dir)
            paths = self._render(run_dir / "samples" / f"after-{stage}", run_dir / "reconstructions" / f"after-{stage}",
                                 self._train_cfg().get("n_renders", 8))
            out["renders"] = [str(p.relative_to(run_dir)) for p in paths]
        return out

    def _train_cfg(self) -> dict[str, Any]:
        return (self.run_config or {}).get("train", {})

    def _render(self, sample_dir: Path | None, recon_dir: Path | None, n: int) -> list[Path]:
        """Samples from the prior, and held-out reconstructions next to their targets."""
        paths: list[Path] = []
        if sample_dir is not None:
            grids = self.sample(n, steps=self._train_cfg().get("sample_steps", 50), seed=0)
            paths += self.domain.render(grids, sample_dir, stem="samples")
        if recon_dir is not None and self._eval_data is not None and len(self._eval_data) > 0:
            x = torch.stack([self._eval_data[i] for i in range(min(n, len(self._eval_data)))]).float()
            paths += self.domain.render(self.reconstruct(x), recon_dir, stem="reconstructions")
            paths += self.domain.render(x, recon_dir, stem="targets")
        return [Path(p) for p in paths]

    # -- inference -------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, x: torch.Tensor, sample: bool = False) -> torch.Tensor:
        """Data grids (B, c, *grid) → latents (posterior means unless ``sample``)."""
        mean, logvar = self.encoder(x.to(self.device, torch.float32))
        return self.encoder.reparameterize(mean, logvar) if sample else mean

    @torch.no_grad()
    def encode_dataset(self, dataset, batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        was = self.training
        self.eval()
        means, logvars = [], []
        for i in range(0, len(dataset), batch_size):
            x = torch.stack([dataset[j] for j in range(i, min(i + batch_size, len(dataset)))])
            m, lv = self.encoder(x.to(self.device, torch.float32))
            means.append(m.float())
            logvars.append(lv.float())
        self.train(was)
        return torch.cat(means), torch.cat(logvars)

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

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, resolution=None) -> torch.Tensor:
        return self.decode(self.encode(x), resolution)

    @torch.no_grad()
    def sample_latents(self, n: int, steps: int = 50, eta: float = 0.0, seed: int | None = None, use_ema: bool = True) -> torch.Tensor:
        generator = torch.Generator()  # CPU noise: the same seed gives the same samples on any device
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(int(seed))
        return self.prior.sample(n, generator, steps=steps, eta=eta, use_ema=use_ema)

    @torch.no_grad()
    def sample(self, n: int, resolution=None, steps: int = 50, eta: float = 0.0, seed: int | None = None,
               use_ema: bool = True) -> torch.Tensor:
        """n new items as model-space grids (n, c, *shape): prior → z → hypernetwork → INR."""
        was = self.training
        self.eval()
        try:
            return self.decode(self.sample_latents(n, steps=steps, eta=eta, seed=seed, use_ema=use_ema), resolution)
        finally:
            self.train(was)

    def use_ema_weights(self) -> None:
        """Copy the prior's EMA weights into its live weights (``load_run(..., weights='ema')``)."""
        ema = getattr(self.prior, "ema", None)
        if ema is None:
            raise ConfigError("this prior keeps no EMA weights")
        ema.copy_to(self.prior.denoiser)

    @torch.no_grad()
    def evaluate(self, dataset, batch_size: int = 16) -> dict[str, Any]:
        """Reconstruction metrics on ``dataset`` (mean and std over items of each domain metric)."""
        was = self.training
        self.eval()
        per_item: dict[str, list[torch.Tensor]] = {}
        try:
            for i in range(0, len(dataset), batch_size):
                x = torch.stack([dataset[j] for j in range(i, min(i + batch_size, len(dataset)))]).float()
                rec = self.reconstruct(x)
                for k, v in self.domain.metrics(rec, x).items():
                    per_item.setdefault(k, []).append(v.detach().float().cpu().reshape(-1))
        finally:
            self.train(was)
        out: dict[str, Any] = {"n_items": len(dataset)}
        for k, vals in per_item.items():
            v = torch.cat(vals)
            out[k] = {"mean": float(v.mean()), "std": float(v.std()) if v.numel() > 1 else 0.0}
        return out

    # -- training ----------------------------------------------------------------------------------
    def fit(self, data=None, out: str | Path = "runs/ldmi", stages: tuple[str, ...] | None = None,
            resume: bool = False, overwrite: bool = False, init_from: str | Path | None = None,
            engine=None, on_step=None, **train_overrides) -> dict[str, Any]:
        """Train into the run directory ``out``; see :func:`inrkit_ldmi.api.fit`."""
        from .api import fit

        return fit(self, data=data, out=out, stages=stages, resume=resume, overwrite=overwrite,
                   init_from=init_from, engine=engine, on_step=on_step, **train_overrides)

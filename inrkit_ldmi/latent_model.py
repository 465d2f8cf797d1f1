"""What LDMI and the conventional LDM share: encoder → latents → decoder, and a latent prior.

Both are trained in two stages (``vae``: eq. 6; ``prior``: eq. 7 on the frozen encoder's
latents) and sampled, rendered and evaluated alike; they differ only in the decoder (a
hypernetwork + INR, or a conv decoder). A subclass builds its decoder in ``_build_decoder``,
names the modules stage ``vae`` trains in ``vae_modules``, and supplies ``vae_loss``,
``decode`` and ``parameter_report``. What the models write to look at (sample grids,
reconstructions beside their targets) is :class:`~inrkit_ldmi.renders.Renders`.
"""
from __future__ import annotations

import abc
from pathlib import Path
from typing import Any, ClassVar, Iterable

import torch
from torch import nn

from inrkit.errors import ConfigError
from inrkit.likelihoods import gaussian_kl
from inrkit.registry import PartConfig, models

from inrkit.recipe import Recipe

from .renders import Renders
from .stats import summarise


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class LatentModel(Renders, nn.Module, abc.ABC):
    model_name: ClassVar[str]  # the ``models`` registry name
    config_class: ClassVar[type[PartConfig]]

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.domain = config.built_domain()
        self.encoder = config.build("encoder", in_channels=self.domain.channels, grid_shape=tuple(self.domain.grid_shape))
        self.latent_shape = tuple(int(s) for s in self.encoder.latent_shape)
        self._build_decoder(config)
        self.prior = config.build("prior", latent_shape=self.latent_shape)
        self.likelihood = config.build("likelihood")
        # The training grid; not saved (the domain config rebuilds it).
        self.register_buffer("coords", self.domain.grid().float(), persistent=False)
        # the configuration it was built from (set by Recipe.build_model; ``fit`` trains with it)
        self.recipe: Recipe | None = None

    @abc.abstractmethod
    def _build_decoder(self, config) -> None:
        """Build the decoder side (LDMI: hypernetwork + INR; LDM: conv decoder) from ``config``."""

    @abc.abstractmethod
    def vae_modules(self) -> tuple[nn.Module, ...]:
        """The modules stage ``vae`` trains."""

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_config(cls, config):
        """From the model's config object, a model section, a whole run config or a :class:`Recipe`
        (a run config is kept as the model's recipe, for ``fit``)."""
        if isinstance(config, cls.config_class):
            return cls(config)
        if isinstance(config, Recipe) or "model" in config:
            recipe = config if isinstance(config, Recipe) else Recipe.from_config(config, model=cls.model_name)
            if recipe.model_name != cls.model_name:
                raise ConfigError(f"model.name: '{recipe.model_name}' is not an {cls.model_name.upper()} model")
            return recipe.build_model(cls)
        spec = dict(config)
        name = spec.pop("name", cls.model_name)
        if name != cls.model_name:
            raise ConfigError(f"model.name: '{name}' is not an {cls.model_name.upper()} model")
        return cls(models.validate(spec, name=cls.model_name))

    @classmethod
    def from_preset(cls, modality: str, preset: str = "paper", overrides: list[str] | None = None):
        """The model of a shipped preset (with ``--set`` style overrides), e.g. ``LDMI.from_preset("image", "tiny")``."""
        return cls.from_config(Recipe.resolve(cls.model_name, preset, overrides=overrides, modality=modality))

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | None = None, weights: str = "final"):
        """The model saved in a run directory or by :meth:`save_pretrained` (diffusers' habit);
        :func:`inrkit.load_run` with a check that the folder holds this kind of model."""
        from inrkit.errors import CheckpointError
        from inrkit.runs import load_run

        model = load_run(path, device=device, weights=weights)
        if not isinstance(model, cls):
            raise CheckpointError(f"{path}: holds a '{model.registry_name}' model, not '{cls.model_name}'")
        return model

    def save_pretrained(self, path: str | Path) -> Path:
        """``config.yaml`` + ``model.safetensors`` in ``path``, the layout of a run (see
        :func:`inrkit.runs.save_pretrained`); :meth:`from_pretrained` and ``inrkit sample`` read it."""
        from inrkit.runs import save_pretrained

        return save_pretrained(self, path)

    @property
    def device(self) -> torch.device:
        return self.coords.device

    @property
    def stages(self) -> tuple[str, ...]:
        # A prior without parameters (the standard normal) has nothing to train.
        has_prior = any(True for _ in self.prior.parameters())
        return ("vae", "prior") if has_prior else ("vae",)

    # -- the trainer's protocol ----------------------------------------------------------------
    def stage_parameters(self, stage: str) -> Iterable[nn.Parameter]:
        if stage == "vae":
            # a likelihood may learn its own parameters (l1_logvar's log-scale), as the reference does
            own = getattr(self.likelihood, "model_parameters", self.likelihood.parameters)
            return [p for m in self.vae_modules() for p in m.parameters()] + list(own())
        if stage == "prior":
            return list(self.prior.parameters())
        raise ConfigError(f"{self.model_name.upper()} has no stage '{stage}' (stages: {', '.join(self.stages)})")

    def stage_loss(self, stage: str, batch, points: int | None = None, generator: torch.Generator | None = None):
        if stage == "vae":
            return self.vae_loss(batch, points=points, generator=generator)
        if stage == "prior":
            mean, logvar = batch
            loss = self.prior.loss(self.encoder.reparameterize(mean, logvar))
            return loss, {}
        raise ConfigError(f"{self.model_name.upper()} has no stage '{stage}'")

    def _elbo(self, pred: torch.Tensor, target: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor):
        """Eq. 6's loss from the decoded values: NLL + β·KL(q(z|x) ‖ N(0, I)), with its logs.

        ``nll_reduction: sum`` scales the per-value mean NLL by the values of the whole grid (an
        unbiased estimate of the sum when only a subset of points was decoded); with
        ``kl_reduction: sum`` too, this is the reference code's objective (both summed per item).
        """
        adversarial, logs = 0.0, {}
        if getattr(self.likelihood, "needs_grid", False):  # perceptual/adversarial terms read whole grids
            if pred.shape[1] != self.coords.shape[0]:
                raise ConfigError(f"likelihood '{self.likelihood.registry_name}' needs every grid point:"
                                  " set train.vae.points to null")
            shape = self.domain.grid_shape
            nll, adversarial, logs = self.likelihood.grid_nll(self.domain.to_grid(pred, shape),
                                                              self.domain.to_grid(target, shape), self._last_layer())
        else:
            nll = self.likelihood(pred, target)
        if self.config.nll_reduction == "sum":
            nll = nll * (self.coords.shape[0] * self.domain.channels)
        kl = gaussian_kl(mean, logvar, reduction=self.config.kl_reduction)
        loss = (nll + self.config.beta * kl).mean() + adversarial
        return loss, {"nll": nll.mean(), "kl": kl.mean(), **logs}

    def _last_layer(self) -> torch.Tensor | None:
        """The decoder's last weight (the adversarial term's adaptive weight reads its gradients)."""
        return None

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

    def preview(self, stage: str, step: int, context) -> list[Path]:
        where = Path(context.run_dir) / "previews" / f"{stage}-{step}"
        return self._render(context, where if stage == "prior" else None, where if stage == "vae" else None)

    def after_stage(self, stage: str, context) -> dict[str, Any]:
        """Held-out metrics after stage ``vae`` and renders after each stage (``context``: the trainer's StageContext)."""
        out: dict[str, Any] = {}
        if context.heldout is not None and stage == "vae":  # the prior stage leaves reconstructions as they are
            out["heldout"] = self.evaluate(context.heldout)
        if context.run_dir is not None:
            run_dir = Path(context.run_dir)
            paths = self._render(context, run_dir / "samples" / f"after-{stage}", run_dir / "reconstructions" / f"after-{stage}")
            out["renders"] = [str(p.relative_to(run_dir)) for p in paths]
        return out

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
    def reconstruct(self, x: torch.Tensor, resolution=None) -> torch.Tensor:
        return self.decode(self.encode(x), resolution)

    @torch.no_grad()
    def sample_latents(self, n: int, steps: int | None = None, eta: float | None = None, seed: int | None = None,
                       use_ema: bool = True, compile: bool = False) -> torch.Tensor:
        """n latents from the prior; ``steps``/``eta`` None take the prior's configured sampler values;
        ``compile`` compiles the prior's denoiser for this run where its sampler can."""
        generator = torch.Generator()  # CPU noise: the same seed gives the same samples on any device
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(int(seed))
        extra = {"compile": True} if compile else {}  # a prior's sampler that compiles (diffusion) takes it
        return self.prior.sample(n, generator, steps=steps, eta=eta, use_ema=use_ema, **extra)

    @torch.no_grad()
    def sample(self, n: int, resolution=None, steps: int | None = None, eta: float | None = None, seed: int | None = None,
               use_ema: bool = True, compile: bool = False) -> torch.Tensor:
        """n new items as model-space grids (n, c, *shape): prior → z → decoder."""
        was = self.training
        self.eval()
        try:
            return self.decode(self.sample_latents(n, steps=steps, eta=eta, seed=seed, use_ema=use_ema, compile=compile),
                               resolution)
        finally:
            self.train(was)

    def inpaint(self, observed: torch.Tensor, mask: torch.Tensor, resolution=None, steps: int = 50,
                guidance: float = 1.0, seed: int | None = None, n: int = 1, **kwargs) -> torch.Tensor:
        """Complete partial observations (mask True where observed); see :func:`inrkit_ldmi.inpaint.inpaint`."""
        from .inpaint import inpaint

        return inpaint(self, observed, mask, resolution=resolution, steps=steps, guidance=guidance, seed=seed, n=n,
                       **kwargs)

    def complete(self, observations, n: int = 4, resolution=None, **kwargs):
        """Completions of the item ``observations`` (``Domain.read_observations``) sees; see :func:`inrkit_ldmi.complete.complete`."""
        from .complete import complete

        return complete(self, observations, n=n, resolution=resolution, **kwargs)

    def use_ema_weights(self) -> None:
        """Copy the prior's EMA weights into its live weights (``load_run(..., weights='ema')``)."""
        self.prior.use_ema_weights()

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
        return {"n_items": len(dataset), **summarise(per_item)}

    # -- training ----------------------------------------------------------------------------------
    def fit(self, data=None, out: str | Path = "runs/ldmi", stages: tuple[str, ...] | None = None,
            resume: bool | str = False, overwrite: bool = False, init_from: str | Path | None = None,
            engine=None, on_step=None, **train_overrides) -> dict[str, Any]:
        """Train into the run directory ``out``; see :func:`inrkit_ldmi.api.fit`."""
        from .api import fit

        return fit(self, data=data, out=out, stages=stages, resume=resume, overwrite=overwrite,
                   init_from=init_from, engine=engine, on_step=on_step, **train_overrides)

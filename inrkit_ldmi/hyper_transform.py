"""Hyper-transforming (the paper's second paradigm, eq. 8): a pre-trained LDM becomes an INR generator.

The source's encoder and diffusion prior are copied and frozen; only the HD learns, to decode
the same latents into INRs, on the likelihood alone (L2 or L1 through the likelihood's name, and
a perceptual term if the user gives a feature network). The result is an ordinary LDMI run
(``model.name: ldmi``): ``inrkit sample``, ``evaluate`` and ``compare`` take it as any other.
Its config.yaml also records ``paradigm: hyper-transform`` and where the weights came from, and
the run keeps the source's conv decoder (``source_decoder.safetensors``) for the HD-vs-decoder
report (:mod:`.report`).

In the run, stage ``vae`` is the HD stage (eq. 8: encoder frozen, no KL) and stage ``prior``
exists only when the source brought no trained prior (a diffusers autoencoder).
"""
from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Literal

import pydantic
import torch
from torch import nn

from inrkit.config import parse_override
from inrkit.errors import ConfigError
from inrkit.io import save_tensors
from inrkit.config import apply_overrides
from inrkit.recipe import Recipe
from inrkit.registry import PartConfig, format_validation_error
from .model import LDMI
from .sources import Source, check_weights, load_prior, load_source

PARADIGM = "hyper-transform"
SECTION = "hyper_transform"
SOURCE_DECODER_FILE = "source_decoder.safetensors"


class HyperTransformOptions(PartConfig):
    """The ``hyper_transform`` section (``--set hyper_transform.perceptual=vgg16.safetensors``)."""

    posterior: Literal["sample", "mean"] = pydantic.Field(
        "sample", description="z ~ q(z|x) as eq. 8's expectation, or the posterior mean")
    perceptual: str | None = pydantic.Field(
        None, description="a local VGG features safetensors file; the perceptual term is off without one")
    perceptual_weight: float = pydantic.Field(0.1, ge=0.0)


class HyperTransformLDMI(LDMI):
    """An LDMI whose encoder (and, when the source brought one, prior) are frozen copies.

    Saved and reloaded as a plain ``ldmi`` (``load_run`` needs no hyper-transform code).
    """

    def freeze(self, prior: bool, options: HyperTransformOptions | None = None) -> "HyperTransformLDMI":
        self.frozen = [self.encoder, *([self.prior] if prior else [])]
        for part in self.frozen:
            part.requires_grad_(False)
            part.eval()
        self.options = options or HyperTransformOptions()
        # not a submodule: the feature network is a training tool, never part of the saved LDMI
        self.__dict__["_perceptual"] = None
        if self.options.perceptual is not None and self.options.perceptual_weight > 0:
            from .perceptual import PerceptualLoss

            if len(self.domain.grid_shape) != 2 or self.domain.channels not in (1, 3):
                raise ConfigError(f"hyper_transform.perceptual: needs 2D data with 1 or 3 channels,"
                                  f" not grids {(self.domain.channels, *self.domain.grid_shape)}")
            self.__dict__["_perceptual"] = PerceptualLoss(self.options.perceptual)
        return self

    @property
    def stages(self) -> tuple[str, ...]:
        trains_prior = self.prior not in self.frozen and any(True for _ in self.prior.parameters())
        return ("vae", "prior") if trains_prior else ("vae",)

    def train(self, mode: bool = True):
        super().train(mode)
        for part in getattr(self, "frozen", []):
            part.eval()
        return self

    def stage_parameters(self, stage: str) -> Iterable[nn.Parameter]:
        if stage == "vae":
            return list(self.hypernet.parameters())
        return super().stage_parameters(stage)

    def vae_loss(self, x: torch.Tensor, points: int | None = None, generator: torch.Generator | None = None):
        """Eq. 8: E_q(z|x)[−log p(x | HD(z))] with q frozen; no KL (the encoder does not move)."""
        with torch.no_grad(), torch.autocast(device_type=x.device.type, enabled=False):
            # fp32 latents, as the frozen prior saw them
            mean, logvar = self.encoder(x.float())
            z = mean if self.options.posterior == "mean" else self.encoder.reparameterize(mean, logvar)
        perceptual = self.__dict__.get("_perceptual")
        if perceptual is not None and points is not None and points < self.coords.shape[0]:
            raise ConfigError("hyper_transform.perceptual needs whole images: set train.vae.points=null")
        coords, target = self._training_points(x, points, generator)
        pred = self._inr_values(z, coords)
        nll = self.likelihood(pred, target)
        logs = {"nll": nll.mean()}
        loss = nll
        if perceptual is not None:
            perceptual.to(x.device)
            p = perceptual(self.domain.to_grid(self.domain.postprocess(pred)), x)
            loss = loss + self.options.perceptual_weight * p
            logs["perceptual"] = p.mean()
        return loss.mean(), logs


# -- the run config ------------------------------------------------------------------------------
def _split_overrides(overrides: list[str] | None) -> tuple[list[str], dict[str, Any]]:
    """``--set hyper_transform.x=v`` items are this module's; the rest go to the LDMI config."""
    rest, options = [], {}
    for item in overrides or []:
        keys, value = parse_override(item)
        if keys[0] == SECTION:
            if len(keys) != 2:
                raise ConfigError(f"--set {item}: expected {SECTION}.<field>=value")
            options[keys[1]] = value
        else:
            rest.append(item)
    return rest, options


def _options(raw: dict[str, Any]) -> HyperTransformOptions:
    try:
        return HyperTransformOptions(**raw)
    except pydantic.ValidationError as err:
        raise ConfigError(format_validation_error(err, SECTION)) from None


def latent_adaptation(preset_latent: tuple[int, ...], source_latent: tuple[int, ...], patch_size: int) -> dict[str, Any]:
    """How the HD preset meets the source's latent grid: tokens follow the latent shape (the HD
    pads each axis up to a multiple of the patch), unless a patch would be larger than the grid."""
    grid = source_latent[1:]
    if not grid or min(grid) < patch_size:
        raise ConfigError(
            f"hyper-transform: the source's latent shape {tuple(source_latent)} cannot be tiled by the HD's"
            f" {patch_size}-wide patches (the preset expects latents like {tuple(preset_latent)});"
            f" set --set model.hypernet.patch_size=1")
    tokens = 1
    for g in grid:
        tokens *= -(-g // patch_size)
    preset_tokens = 1
    for g in preset_latent[1:]:
        preset_tokens *= -(-g // patch_size)
    return {"preset_latent_shape": list(preset_latent), "source_latent_shape": list(source_latent),
            "patch_size": patch_size, "hd_tokens": tokens, "preset_hd_tokens": preset_tokens,
            "adapted": tuple(preset_latent) != tuple(source_latent)}


def hyper_transform_config(source: Source, modality: str | None = None, preset: str | None = None,
                           config_file: str | Path | None = None, data: str | Path | None = None,
                           overrides: list[str] | None = None, prior: tuple[dict, tuple[int, ...]] | None = None,
                           ) -> tuple[dict[str, Any], HyperTransformOptions, dict[str, Any]]:
    """The resolved LDMI run config (HD, INR, training from the preset; encoder, prior, domain and data
    from the source), the hyper-transform options, and the latent adaptation record."""
    rest, raw_options = _split_overrides(overrides)
    options = _options(raw_options)
    for item in rest:
        if item.startswith("model.encoder") or (item.startswith("model.prior") and (prior or source.prior)):
            raise ConfigError(f"--set {item}: the {item.split('.')[1]} comes frozen from the source; it cannot be changed")
    src_modality = (source.domain or {}).get("name")
    if modality is not None and src_modality is not None and modality != src_modality:
        raise ConfigError(f"--modality {modality} does not match the source's domain '{src_modality}' ({source.path})")
    recipe = Recipe.resolve("ldmi", preset, config_file, data, modality=modality or src_modality)
    preset_encoder = recipe.model_config.build("encoder", in_channels=recipe.domain.channels,
                                               grid_shape=tuple(recipe.domain.grid_shape))
    preset_latent = tuple(int(n) for n in preset_encoder.latent_shape)

    cfg = copy.deepcopy(recipe.config)
    if source.domain is not None:
        # the frozen encoder (and prior) learnt this grid; the source's data too, unless --data is given
        cfg["model"]["domain"] = copy.deepcopy(source.domain)
        if source.data is not None and data is None:
            cfg["data"] = copy.deepcopy(source.data)
    cfg = apply_overrides(cfg, rest)
    for key in ("in_dim", "out_dim"):  # the preset resolved them for its own domain: refill for this one
        if key not in " ".join(rest):
            cfg["model"]["inr"].pop(key, None)
    domain = Recipe.from_config(cfg).domain
    if domain.channels != source.in_channels:
        raise ConfigError(
            f"hyper-transform: the source encodes ({source.in_channels}, H, W) data but the data are"
            f" {(domain.channels, *domain.grid_shape)}; set --set model.domain.channels={source.in_channels}")
    cfg["model"]["encoder"] = copy.deepcopy(source.encoder)
    source_latent = source.latent_shape(domain.grid_shape)
    if prior is not None:
        prior_spec, prior_latent = prior
        if tuple(prior_latent) != tuple(source_latent):
            raise ConfigError(f"--prior-from: the prior models latents of shape {tuple(prior_latent)},"
                              f" the source's encoder gives {tuple(source_latent)}")
        cfg["model"]["prior"] = copy.deepcopy(prior_spec)
    elif source.prior is not None:
        cfg["model"]["prior"] = copy.deepcopy(source.prior)
    patch = int(cfg["model"]["hypernet"].get("patch_size") or 1)
    adaptation = latent_adaptation(preset_latent, source_latent, patch) if cfg["model"]["hypernet"]["name"] == "hd" \
        else {"preset_latent_shape": list(preset_latent), "source_latent_shape": list(source_latent)}
    return Recipe.from_config(cfg).config, options, adaptation


# -- training --------------------------------------------------------------------------------------
def build_model(source: Source, config: dict[str, Any], options: HyperTransformOptions,
                prior_weights: dict[str, torch.Tensor] | None = None) -> HyperTransformLDMI:
    """The LDMI to train: the source's encoder (and prior) weights loaded and frozen, a fresh HD."""
    model = HyperTransformLDMI.from_config(config)
    check_weights(model.encoder, source.encoder_state, f"{source.path}: encoder")
    prior_state = prior_weights if prior_weights is not None else source.prior_state
    if prior_state is not None:
        check_weights(model.prior, prior_state, f"{source.path}: prior")
    return model.freeze(prior=prior_state is not None, options=options)


def prepare_hyper_transform(source: str | Path, prior_from: str | Path | None = None, modality: str | None = None,
                            preset: str | None = None, config_file: str | Path | None = None,
                            data: str | Path | None = None, overrides: list[str] | None = None,
                            ) -> tuple[HyperTransformLDMI, Source]:
    """The model ready to ``fit`` (run config with the hyper-transform record set), and its source."""
    src = load_source(source)
    prior = load_prior(prior_from) if prior_from is not None else None
    cfg, options, adaptation = hyper_transform_config(
        src, modality=modality, preset=preset, config_file=config_file, data=data, overrides=overrides,
        prior=None if prior is None else (prior[0], prior[2]))
    if prior_from is not None:
        src.prior_origin = str(Path(prior_from).expanduser().resolve())
    elif src.prior is None:
        src.prior_origin = "trained in this run on the frozen encoder's latents"
    record = {"source": src.describe(), "adaptation": adaptation, **options.model_dump(mode="json"),
              "source_decoder": src.decoder}
    cfg = {**cfg, "paradigm": PARADIGM, SECTION: record}  # config.yaml records how the run came about
    return build_model(src, cfg, options, prior_weights=None if prior is None else prior[1]), src


def keep_source_decoder(run_dir: str | Path, source: Source) -> None:
    """The source's conv decoder stays with the run, for the HD-vs-decoder report."""
    save_tensors(source.decoder_state, Path(run_dir) / SOURCE_DECODER_FILE,
                 metadata={"source": str(source.path), "kind": source.kind})


def train_hyper_transform(*, source: str | Path | None, modality: str | None = None, data: str | Path | None = None,
                          preset: str | None = None, config_file: str | Path | None = None,
                          overrides: list[str] | None = None, out: str | Path | None = None, resume: bool | str = False,
                          overwrite: bool = False, prior_from: str | Path | None = None, devices: int = 1,
                          device: str | None = None, stage: str = "all", on_step=None) -> dict[str, Any]:
    """``inrkit train ldmi --paradigm hyper-transform --from SOURCE``: train the HD of a pre-trained LDM.

    ``source``: an inrkit ``ldm`` run or a diffusers AutoencoderKL folder; ``prior_from``: a run whose
    trained prior replaces (or supplies) the source's. Returns the run summary (with ``run_dir``).
    """
    if source is None:
        raise ConfigError("--paradigm hyper-transform needs --from SOURCE (an inrkit ldm run or a diffusers AutoencoderKL folder)")
    overrides = list(overrides or []) + ([f"train.device={device}"] if device is not None else [])
    model, src = prepare_hyper_transform(source, prior_from=prior_from, modality=modality, preset=preset,
                                         config_file=config_file, data=data, overrides=overrides)
    domain = model.recipe.config["model"]["domain"]["name"]
    out = Path(out) if out is not None else Path("runs") / f"{domain}-hyper-transform-{time.strftime('%Y%m%d-%H%M%S')}"
    if devices > 1 and "WORLD_SIZE" not in os.environ:
        return _relaunch(devices, source=source, modality=modality, data=data, preset=preset, config_file=config_file,
                         overrides=overrides, out=out, resume=resume, overwrite=overwrite, prior_from=prior_from, stage=stage)
    summary = model.fit(out=out, stages=None if stage == "all" else (stage,), resume=resume, overwrite=overwrite,
                        on_step=on_step)
    if int(os.environ.get("RANK", "0")) == 0:
        keep_source_decoder(out, src)
    return {**summary, "run_dir": str(out), SECTION: model.recipe.config[SECTION]}


def is_hyper_transform_run(config: dict[str, Any]) -> bool:
    return config.get("paradigm") == PARADIGM


def _relaunch(devices: int, **opts) -> dict[str, Any]:
    """The same command under torchrun, one process per device (every rank trains, rank 0 writes)."""
    args = ["train", "ldmi", "--paradigm", PARADIGM, "--from", str(opts["source"]), "--stage", opts["stage"],
            "--out", str(opts["out"])]
    for key, flag in (("modality", "--modality"), ("data", "--data"), ("preset", "--preset"),
                      ("config_file", "--config"), ("prior_from", "--prior-from")):
        if opts.get(key) is not None:
            args += [flag, str(opts[key])]
    for item in opts.get("overrides") or []:
        args += ["--set", item]
    if opts.get("resume"):
        args.append("--resume-older" if opts["resume"] == "older" else "--resume")
    args += ["--overwrite"] if opts.get("overwrite") else []
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={devices}", "-m", "inrkit_cli.main", *args]
    print("launching: " + " ".join(cmd), file=sys.stderr)
    code = subprocess.call(cmd)
    if code != 0:
        raise ConfigError(f"the {devices}-process hyper-transform run exited with code {code}")
    return {"run_dir": str(opts["out"]), "relaunched": devices}


__all__ = ["HyperTransformLDMI", "HyperTransformOptions", "build_model", "hyper_transform_config",
           "is_hyper_transform_run", "keep_source_decoder", "latent_adaptation", "prepare_hyper_transform",
           "train_hyper_transform"]

"""LDMI configs: the model section (part specs checked by their registries), the train section,
and the whole run config, resolved into plain data that ``config.yaml`` stores.

Run config layout (YAML)::

    schema_version: 1
    model: {name: ldmi, domain: {...}, encoder: {...}, inr: {...}, hypernet: {...},
            prior: {...}, likelihood: {...}, beta: 1.0e-4}
    data:  {path: null, <fields of the domain's dataset>}
    train: {seed, device, precision, ..., vae: {steps, batch_size, lr, ...}, prior: {...}}
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pydantic
from pydantic import Field

from inrkit.config import SCHEMA_VERSION, apply_overrides
from inrkit.errors import ConfigError, InrkitError
from inrkit.registry import PartConfig, format_validation_error, registry
from inrkit.train import StageConfig, TrainConfig

# model section key → registry kind
PART_KINDS = {
    "domain": "domains",
    "encoder": "encoders",
    "inr": "inrs",
    "hypernet": "hypernets",
    "prior": "priors",
    "likelihood": "likelihoods",
}


class FieldError(ConfigError):
    """A ConfigError whose message already starts with the config field it is about."""


def validate_part(kind: str, spec: Any, where: str) -> dict[str, Any]:
    """A part spec (``{name, **fields}`` or just a name) → its full spec with every default filled."""
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict):
        raise FieldError(f"{where}: expected a part spec {{name: ..., <fields>}}, got {spec!r}")
    reg = registry(kind)
    if "name" not in spec:
        raise FieldError(f"{where}: missing 'name' (known: {', '.join(reg.names())})")
    try:
        cfg = reg.validate(spec)
    except FieldError:
        raise
    except InrkitError as err:
        raise FieldError(f"{where}: {err}") from None
    return {"name": spec["name"], **cfg.model_dump(mode="json")}


def build_part(kind: str, spec: dict[str, Any], **context):
    fields = dict(spec)
    name = fields.pop("name")
    return registry(kind).build(name, context=context, **fields)


class LDMIConfig(PartConfig):
    """The ``model`` section. INR ``in_dim``/``out_dim`` and the likelihood follow the domain."""

    domain: dict[str, Any] | str
    encoder: dict[str, Any] | str
    inr: dict[str, Any] | str = "siren"
    hypernet: dict[str, Any] | str = "hd"
    prior: dict[str, Any] | str = "diffusion"
    likelihood: dict[str, Any] | str | None = None
    beta: float = Field(1e-4, ge=0.0, description="weight of the KL term of the VAE loss (eq. 6)")
    kl_reduction: Literal["mean", "sum"] = Field(
        "mean", description="KL per latent element (mean, as the likelihood averages points) or in nats (sum)")
    nll_reduction: Literal["mean", "sum"] = Field(
        "mean", description="NLL per data value (mean) or summed over the item's values (sum, as the paper's code)")
    chunk: int = Field(65536, ge=1, description="coordinates per INR evaluation when decoding (bounds memory)")

    @pydantic.model_validator(mode="after")
    def _resolve_parts(self):
        self.domain = validate_part("domains", self.domain, "model.domain")
        domain = build_part("domains", self.domain)
        inr = {"name": self.inr} if isinstance(self.inr, str) else dict(self.inr)
        for key, want, what in (("in_dim", domain.coord_dim, "coordinate dimension"), ("out_dim", domain.channels, "channels")):
            if inr.get(key) is not None and inr[key] != want:
                raise FieldError(f"model.inr.{key}={inr[key]} does not match the domain's {what} ({want}); leave it unset")
            inr[key] = want
        self.inr = validate_part("inrs", inr, "model.inr")
        self.encoder = validate_part("encoders", self.encoder, "model.encoder")
        self.hypernet = validate_part("hypernets", self.hypernet, "model.hypernet")
        self.prior = validate_part("priors", self.prior, "model.prior")
        self.likelihood = validate_part("likelihoods", self.likelihood or domain.default_likelihood, "model.likelihood")
        return self


def _stage(**kw) -> Any:
    return Field(default_factory=lambda: StageConfig(**kw))


class LDMITrainConfig(TrainConfig):
    """Training of both stages: ``vae`` (encoder + hypernetwork, eq. 6) and ``prior`` (eq. 7)."""

    vae: StageConfig = _stage(steps=20000, batch_size=32, lr=1e-4, warmup=500)
    prior: StageConfig = _stage(steps=20000, batch_size=64, lr=1e-4, warmup=500)
    sample_steps: int = Field(50, ge=1, description="DDIM steps of the samples rendered after each stage")
    n_renders: int = Field(8, ge=1, description="samples and reconstructions rendered after each stage")


class RunConfig(PartConfig):
    schema_version: int = SCHEMA_VERSION
    model: dict[str, Any]
    data: dict[str, Any] = Field(default_factory=lambda: {"path": None})
    train: dict[str, Any] = Field(default_factory=dict)
    # how the weights came about; hyper-transform runs also record their source (inrkit_ldmi.hyper_transform)
    paradigm: Literal["full", "hyper-transform"] = "full"
    hyper_transform: dict[str, Any] | None = None


def resolve_data(data: dict[str, Any], domain) -> dict[str, Any]:
    """Check the data section against the dataset that will read it (the user's fields only)."""
    data = dict(data or {})
    if "split" in data:
        raise ConfigError("data.split: the split is chosen by the trainer (train for training, val for metrics)")
    path = data.get("path")
    fields = {k: v for k, v in data.items() if k != "path"}
    if fields.get("name"):  # a dataset chosen by name, e.g. the built-in digits instead of faces
        spec = dict(fields) if path is None else {**fields, "path": str(Path(str(path)).expanduser())}
    elif path is None:
        name = domain.builtin_dataset
        spec = {"name": name, **fields}
    else:
        p = Path(str(path)).expanduser()
        if not p.exists():
            raise ConfigError(f"data.path: {p} does not exist")
        name = domain.dataset_for(p)
        spec = {"name": name, "path": str(p), **fields}
    validate_part("datasets", spec, "data")
    return {"path": None if path is None else str(path), **fields}


def resolve_run_config(raw: dict[str, Any]) -> dict[str, Any]:
    """Preset + file + overrides → the fully resolved run config (plain data), or a ConfigError."""
    try:
        run = RunConfig(**raw)
    except pydantic.ValidationError as err:
        raise ConfigError(format_validation_error(err, "config")) from None
    if run.schema_version != SCHEMA_VERSION:
        raise ConfigError(f"schema_version {run.schema_version} is not supported (this inrkit writes {SCHEMA_VERSION})")
    model = dict(run.model)
    model.setdefault("name", "ldmi")
    model_spec = validate_part("models", model, "model")
    try:
        train = LDMITrainConfig(**run.train)
    except pydantic.ValidationError as err:
        raise ConfigError(format_validation_error(err, "train")) from None
    domain = build_part("domains", model_spec["domain"])
    data = resolve_data(run.data, domain)
    return {
        "schema_version": SCHEMA_VERSION,
        "model": model_spec,
        "data": data,
        "train": train.model_dump(mode="json"),
        **({"paradigm": run.paradigm, "hyper_transform": run.hyper_transform} if run.paradigm != "full" else {}),
    }


# one way to apply --set overrides across inrkit (name changes replace a part's spec)
apply_sets = apply_overrides

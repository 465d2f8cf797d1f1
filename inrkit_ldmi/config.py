"""LDMI configs: the model section (part specs checked by their registries, each once), the train
section, and the records of how a run came about. A run config is resolved by
:class:`inrkit.recipe.Recipe` into the plain data that ``config.yaml`` stores.

Run config layout (YAML)::

    schema_version: 1
    model: {name: ldmi, domain: {...}, encoder: {...}, inr: {...}, hypernet: {...},
            prior: {...}, likelihood: {...}, beta: 1.0e-4}
    data:  {path: null, <fields of the domain's dataset>}
    train: {seed, device, precision, ..., vae: {steps, batch_size, lr, ...}, prior: {...}}
"""
from __future__ import annotations

from typing import Any, Literal

import pydantic
from pydantic import Field

from inrkit.errors import ConfigError, FieldError
from inrkit.recipe import validate_spec
from inrkit.registry import PartConfig, format_validation_error, get_registry
from inrkit.train import StageConfig, TrainConfig

# model section key → registry kind
PART_KINDS = {
    "domain": "domains",
    "decoder": "decoders",
    "encoder": "encoders",
    "inr": "inrs",
    "hypernet": "hypernets",
    "prior": "priors",
    "likelihood": "likelihoods",
}


def validate_part(kind: str, spec: Any, where: str) -> dict[str, Any]:
    """A part spec (``{name, **fields}`` or just a name) → its full spec with every default filled."""
    return check_part(kind, spec, where)[0]


def check_part(kind: str, spec: Any, where: str) -> tuple[dict[str, Any], PartConfig]:
    """A part spec → (its full spec, its validated config)."""
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict):
        raise FieldError(f"{where}: expected a part spec {{name: ..., <fields>}}, got {spec!r}")
    if "name" not in spec:
        raise FieldError(f"{where}: missing 'name' (known: {', '.join(get_registry(kind).names())})")
    cfg = validate_spec(kind, spec, where)
    return {"name": spec["name"], **cfg.model_dump(mode="json")}, cfg


def build_part(kind: str, spec: dict[str, Any], **context):
    fields = dict(spec)
    name = fields.pop("name")
    return get_registry(kind).build(name, context=context, **fields)


class PartsConfig(PartConfig):
    """A model section made of registered parts: each validated once, while the section is; the
    validated configs (and the domain, built once) are kept to build the parts from."""

    _parts: dict[str, PartConfig] = pydantic.PrivateAttr(default_factory=dict)
    _domain: Any = pydantic.PrivateAttr(None)

    def _validate(self, field: str, spec: Any) -> dict[str, Any]:
        """Validate one part's spec (``{name, **fields}`` or a name), keep its config, return its full spec."""
        plain, self._parts[field] = check_part(PART_KINDS[field], spec, f"model.{field}")
        return plain

    def _validate_domain(self):
        self.domain = self._validate("domain", self.domain)
        self._domain = self.build("domain")
        return self._domain

    def build(self, field: str, **context):
        """The part of ``field`` built from its kept config (``context``: what it needs at run time)."""
        if field == "domain" and self._domain is not None:
            return self._domain
        if field not in self._parts:  # a section built field by field (model_construct): validate now
            setattr(self, field, self._validate(field, getattr(self, field)))
        return get_registry(PART_KINDS[field]).create(getattr(self, field)["name"], self._parts[field], context)

    def built_domain(self):
        return self.build("domain")

    def runtime_paths(self) -> set[str]:
        own = super().runtime_paths()
        return own | {f"{field}.{path}" for field, cfg in self._parts.items() for path in cfg.runtime_paths()}


class LDMIConfig(PartsConfig):
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
        domain = self._validate_domain()
        inr = {"name": self.inr} if isinstance(self.inr, str) else dict(self.inr)
        for key, want, what in (("in_dim", domain.coord_dim, "coordinate dimension"), ("out_dim", domain.channels, "channels")):
            if inr.get(key) is not None and inr[key] != want:
                raise FieldError(f"model.inr.{key}={inr[key]} does not match the domain's {what} ({want}); leave it unset")
            inr[key] = want
        self.inr = self._validate("inr", inr)
        self.encoder = self._validate("encoder", self.encoder)
        self.hypernet = self._validate("hypernet", self.hypernet)
        self.prior = self._validate("prior", self.prior)
        self.likelihood = self._validate("likelihood", self.likelihood or domain.default_likelihood)
        return self


def _stage(**kw) -> Any:
    return Field(default_factory=lambda: StageConfig(**kw))


class LDMITrainConfig(TrainConfig):
    """Training of both stages: ``vae`` (encoder + hypernetwork, eq. 6) and ``prior`` (eq. 7)."""

    vae: StageConfig = _stage(steps=20000, batch_size=32, lr=1e-4, warmup=500)
    prior: StageConfig = _stage(steps=20000, batch_size=64, lr=1e-4, warmup=500)
    sample_steps: int = Field(50, ge=1, description="DDIM steps of the samples rendered after each stage")
    n_renders: int = Field(8, ge=1, description="samples and reconstructions rendered after each stage")


class RunRecords(PartConfig):
    """How a run's weights came about; hyper-transform runs also record their source (inrkit_ldmi.hyper_transform)."""

    paradigm: Literal["full", "hyper-transform"] = "full"
    hyper_transform: dict[str, Any] | None = None


RECORDS = tuple(RunRecords.model_fields)


def check_records(raw: dict[str, Any]) -> dict[str, Any]:
    """The records a run config stores: none for an ordinary (``full``) run."""
    try:
        records = RunRecords(**raw)
    except pydantic.ValidationError as err:
        raise ConfigError(format_validation_error(err, "config", RunRecords)) from None
    return records.model_dump(mode="json") if records.paradigm != "full" else {}

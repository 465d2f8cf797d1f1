"""A run's recipe: its ``model``, ``data`` and ``train`` sections, resolved once.

:meth:`Recipe.resolve` is the only place where a shipped preset, a config file, a data path and
``--set`` overrides meet (in that order, each over the one before); :meth:`Recipe.from_config`
resolves a plain config (a run's ``config.yaml``). Either validates every part once and keeps
what it built: the model's config object (which builds the model with no second validation),
the train config, the domain and the dataset config. ``recipe.config`` is the plain data that
``config.yaml`` stores::

    schema_version: 1
    model: {name: <a models entry>, <its config's fields>}
    data:  {path: null, <fields of the domain's dataset>}
    train: {<fields of the model's train config>}
    <records the model keeps of how the run came about, e.g. paradigm>

A model takes part by registering its recipe (:func:`register_recipe`): its train-config class,
where its presets come from, or the recipe it is derived from and the transform that derives it.
The core names no model: the entries come from plugins.
"""
from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pydantic
import torch

from .config import SCHEMA_VERSION, apply_overrides, deep_merge, load_yaml
from .data import dataset_spec
from .errors import ConfigError, FieldError, InrkitError
from .registry import PartConfig, format_validation_error, get_registry, load_plugins
from .train.config import TrainConfig


@dataclass(frozen=True)
class RecipeKind:
    """What a registered model brings to its recipe.

    ``presets(modality, preset) -> raw config``; a derived kind has ``base`` (another kind's model
    name) and ``transform(raw base config) -> raw config of this model`` instead. ``records``
    names the top-level sections besides model/data/train a run may carry (provenance) and
    ``check_records(dict) -> dict`` validates them (what it returns is stored).
    """

    model: str
    train_config: type[TrainConfig]
    presets: Callable[[str, str], dict[str, Any]] | None = None
    base: str | None = None
    transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    records: tuple[str, ...] = ()
    check_records: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def preset(self, modality: str, preset: str) -> dict[str, Any]:
        if self.base is not None:
            return self.transform(recipe_kind(self.base).preset(modality, preset))
        if self.presets is None:
            raise ConfigError(f"model '{self.model}' ships no presets; give a --config file")
        return self.presets(modality, preset)


_KINDS: dict[str, RecipeKind] = {}


def register_recipe(model: str, *, train_config: type[TrainConfig], presets=None, base: str | None = None,
                    transform=None, records: tuple[str, ...] = (), check_records=None) -> RecipeKind:
    """Declare how runs of the ``models`` entry ``model`` are configured (see :class:`RecipeKind`)."""
    if (base is None) != (transform is None):
        raise ValueError(f"recipe '{model}': base and transform go together")
    kind = RecipeKind(model, train_config, presets, base, transform, tuple(records), check_records)
    _KINDS[model] = kind
    return kind


def recipe_kind(model: str) -> RecipeKind:
    load_plugins()
    if model not in _KINDS:
        close = difflib.get_close_matches(model, list(_KINDS), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise InrkitError(f"no recipe for model '{model}'; known: {', '.join(sorted(_KINDS)) or '(none)'}.{hint}")
    return _KINDS[model]


class _Sections(PartConfig):
    schema_version: int = SCHEMA_VERSION
    model: dict[str, Any]
    data: dict[str, Any] = pydantic.Field(default_factory=lambda: {"path": None})
    train: dict[str, Any] = pydantic.Field(default_factory=dict)


def domain_name(config: dict[str, Any]) -> str | None:
    domain = (config.get("model") or {}).get("domain")
    if isinstance(domain, str):
        return domain
    return domain.get("name") if isinstance(domain, dict) else None


class Recipe:
    """A resolved run configuration (see the module's docstring). Build with :meth:`resolve` or
    :meth:`from_config`; never edited in place (:meth:`with_changes` resolves a changed copy)."""

    def __init__(self, config: dict[str, Any], model_config: PartConfig, train_config: TrainConfig, domain,
                 dataset: tuple[str, PartConfig]):
        self.config = config
        self.model_config = model_config
        self.train_config = train_config
        self.domain = domain
        self.dataset_name, self.dataset_config = dataset

    # -- resolution --------------------------------------------------------------------------
    @classmethod
    def resolve(cls, model: str = "ldmi", preset: str | None = None, config_file: str | Path | None = None,
                data: str | Path | None = None, overrides: list[str] | None = None, *,
                modality: str | None = None) -> "Recipe":
        """preset ← ``config_file`` ← ``data`` ← ``overrides`` (``--set a.b=value``), resolved once.

        With a ``config_file`` naming ``model.domain``, ``modality`` may be left out; with a config
        file and no ``preset``, the file is taken as complete (no preset underneath). A user's
        ``data`` path is read by another dataset than the built-in one: the preset's dataset
        fields do not apply to it, those of the user's own file still do.
        """
        kind = recipe_kind(model)
        file_cfg = load_yaml(config_file) if config_file is not None else {}
        for key in kind.records:  # a run's config.yaml reused as a recipe: how that run came about is not part of it
            file_cfg.pop(key, None)
        file_model = (file_cfg.get("model") or {}).get("name")
        if file_model is not None and file_model != model:
            raise ConfigError(f"{config_file}: model.name is '{file_model}', not {model}")
        file_modality = domain_name(file_cfg)
        modality = modality or file_modality
        if modality is None:
            raise ConfigError("--modality is required (or a --config file whose model.domain names it)")
        if file_modality is not None and file_modality != modality:
            raise ConfigError(f"--modality {modality} does not match the config's model.domain.name '{file_modality}'")
        base = {} if (config_file is not None and preset is None) else kind.preset(modality, preset or "paper")
        config = deep_merge(base, file_cfg)
        config.setdefault("model", {}).setdefault("name", model)
        if domain_name(config) is None:
            config = deep_merge(config, {"model": {"domain": {"name": modality}}})
        if data is not None:
            fields = {k: v for k, v in (file_cfg.get("data") or {}).items() if k != "path"}
            config["data"] = {"path": str(data), **fields}
        return cls.from_config(apply_overrides(config, overrides), model=model)

    @classmethod
    def from_config(cls, raw: dict[str, Any], model: str | None = None) -> "Recipe":
        """A plain run config (a dict, a run's config.yaml) → its recipe, or a ConfigError."""
        raw = dict(raw)
        name = (raw.get("model") or {}).get("name") if isinstance(raw.get("model"), dict) else None
        kind = recipe_kind(name or model or "ldmi")
        records = {k: raw.pop(k) for k in kind.records if k in raw}
        try:
            sections = _Sections(**raw)
        except pydantic.ValidationError as err:
            raise ConfigError(format_validation_error(err, "config", _Sections)) from None
        if sections.schema_version != SCHEMA_VERSION:
            raise ConfigError(f"schema_version {sections.schema_version} is not supported (this inrkit writes {SCHEMA_VERSION})")
        model_spec = {"name": kind.model, **sections.model}
        model_config = validate_spec("models", model_spec, "model")
        try:
            train_config = kind.train_config(**sections.train)
        except pydantic.ValidationError as err:
            raise ConfigError(format_validation_error(err, "train", kind.train_config)) from None
        domain = model_domain(model_config)
        data, dataset_name, dataset_config = resolve_data(sections.data, domain)
        config = {
            "schema_version": SCHEMA_VERSION,
            "model": {"name": kind.model, **model_config.model_dump(mode="json")},
            "data": data,
            "train": train_config.model_dump(mode="json"),
            **(kind.check_records(records) if kind.check_records is not None else records),
        }
        return cls(config, model_config, train_config, domain, (dataset_name, dataset_config))

    def with_changes(self, *, train: dict[str, Any] | None = None, data: str | Path | None = None,
                     **records: Any) -> "Recipe":
        """This recipe with train fields merged, another data path, or records set; resolved again."""
        config = copy.deepcopy(self.config)
        if train:
            config["train"] = deep_merge(config["train"], train)
        if data is not None:
            config["data"] = {**config["data"], "path": str(data)}
        config.update(records)
        return Recipe.from_config(config)

    def with_runtime(self, sets: list[str] | None) -> "Recipe":
        """This recipe with ``--set model.PATH=value`` items that change only speed settings (the
        model's runtime fields, e.g. ``model.inr.kernel``, ``model.inr.tiles.forward.BM``), as when
        a trained run is loaded to sample or evaluate; any other path is a ConfigError naming it."""
        if not sets:
            return self
        allowed = sorted(self.runtime_paths)
        for item in sets:
            key = item.split("=", 1)[0].strip()
            if "=" not in item or not any(key == a or key.startswith(a + ".") for a in allowed):
                raise ConfigError(f"--set {item}: a trained run's model can change only its speed settings here"
                                  f" ({', '.join(allowed) or 'none'}); its other fields are fixed by its weights")
        return Recipe.from_config(apply_overrides(copy.deepcopy(self.config), sets))

    @property
    def runtime_paths(self) -> set[str]:
        """The model's speed settings as ``model.…`` paths (runtime fields, :class:`PartConfig`)."""
        return {f"model.{p}" for p in self.model_config.runtime_paths()}

    # -- what it builds ----------------------------------------------------------------------
    @property
    def model_name(self) -> str:
        return self.config["model"]["name"]

    def build_model(self, cls=None):
        """The model, built under ``train.seed`` (the caller's RNG state is left as it was);
        ``cls``: a subclass of the registered model to build instead (e.g. one that freezes parts)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.train_config.seed))
            if cls is None:
                model = get_registry("models").create(self.model_name, self.model_config)
            else:
                model = cls(self.model_config)
        model.recipe = self
        return model

    def dataset(self, split: str):
        """The ``train`` or ``val`` split of the recipe's data (the domain built once, shared)."""
        cfg = self.dataset_config.model_copy(update={"split": split})
        return get_registry("datasets").create(self.dataset_name, cfg, {"domain": self.domain})


def validate_spec(kind: str, spec: dict[str, Any], where: str) -> PartConfig:
    """``get_registry(kind).validate`` with errors that start with the config field ``where``."""
    try:
        return get_registry(kind).validate(spec)
    except FieldError:
        raise
    except InrkitError as err:
        raise FieldError(f"{where}: {err}") from None


def model_domain(model_config: PartConfig):
    """The domain a model's config built while it validated (``built_domain()``), else one built now."""
    built = getattr(model_config, "built_domain", None)
    if built is not None:
        return built()
    spec = dict(model_config.domain)
    return get_registry("domains").build(spec.pop("name"), **spec)


def resolve_data(data: dict[str, Any], domain) -> tuple[dict[str, Any], str, PartConfig]:
    """The data section checked against the dataset that will read it: (the section as stored,
    the dataset's registry name, its validated config)."""
    data = dict(data or {})
    if "split" in data:
        raise ConfigError("data.split: the split is chosen by the trainer (train for training, val for metrics)")
    path = data.get("path")
    fields = {k: v for k, v in data.items() if k != "path"}
    chosen = {k: v for k, v in fields.items() if k != "name"}
    if not fields.get("name") and path is not None and not Path(str(path)).expanduser().exists():
        raise ConfigError(f"data.path: {Path(str(path)).expanduser()} does not exist")
    spec = dataset_spec(domain, None if path is None else str(path), fields.get("name") or None, **chosen)
    return {"path": None if path is None else str(path), **fields}, spec["name"], validate_spec("datasets", spec, "data")

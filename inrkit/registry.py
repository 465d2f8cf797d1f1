"""Registries of named parts: each entry is a class plus a pydantic config model.

One :class:`Registry` type, one instance per kind. Built-in parts register when their module is
imported (``inrkit`` imports its own eagerly); plugins register through the entry-point group
``inrkit.plugins`` (``modalities`` and ``inrkit_ldmi`` do it that way, as a third party would).
"""
from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Callable

import pydantic

from .errors import ConfigError, InrkitError

KINDS = ("domains", "inrs", "hypernets", "encoders", "decoders", "priors", "likelihoods", "datasets", "models")


SEED_MAX = 2**32 - 1  # every seed, configured or given on the command line, is in 0..SEED_MAX (numpy's range)


class PartConfig(pydantic.BaseModel):
    """Base of every part's config: a misspelt key is an error, not a silent default, and so is
    a float that is not finite (``lr=inf``, ``w0=nan``).

    A field declared with ``Field(..., json_schema_extra=RUNTIME)`` changes how fast a part runs,
    not what it computes (a kernel choice, tile sizes): a run may continue with another value.
    """

    model_config = pydantic.ConfigDict(extra="forbid", protected_namespaces=(), allow_inf_nan=False)

    def runtime_paths(self) -> set[str]:
        """Dotted paths (within this config) of its runtime fields; a config made of parts adds theirs."""
        return {k for k, f in type(self).model_fields.items() if (f.json_schema_extra or {}).get("runtime")}


RUNTIME = {"runtime": True}  # json_schema_extra of a PartConfig field that only changes speed


@dataclass(frozen=True)
class Entry:
    name: str
    cls: Any
    config: type[PartConfig]
    description: str

    def fields(self) -> dict[str, str]:
        out = {}
        for key, field in self.config.model_fields.items():
            default = "required" if field.is_required() else repr(field.get_default(call_default_factory=True))
            out[key] = default
        return out


def _fields_at(model: type[pydantic.BaseModel] | None, loc: tuple) -> list[str]:
    """The field names of the (nested) pydantic model that ``loc`` points into; [] when unknown."""
    for key in loc:
        field = model.model_fields.get(str(key)) if model is not None else None
        ann = getattr(field, "annotation", None)
        model = ann if isinstance(ann, type) and issubclass(ann, pydantic.BaseModel) else None
    return list(model.model_fields) if model is not None else []


_SCALAR_TAGS = {"bool", "int", "float", "str", "none", "bytes"}


def _union_tag(key) -> bool:
    """Whether a location element is pydantic's name for one member of a union (``bool``,
    ``literal['auto']``, ``list[int]``...) rather than a field name."""
    return isinstance(key, str) and (key in _SCALAR_TAGS or "[" in key)


def _merge_union_errors(errors: list[dict]) -> list[dict]:
    """One error per union field: the members' errors for the same value become one, whose
    message lists what each member accepts ("should be a valid boolean or 'auto'"); an error inside
    a member (an item of its list) is named at the field, with what that member wanted."""
    out: list[dict] = []
    for e in errors:
        loc = tuple(e["loc"])
        cut = next((i for i, key in enumerate(loc) if i and _union_tag(key)), None)
        if cut is None:
            out.append(e)
            continue
        field = loc[:cut]
        msg = e["msg"].removeprefix("Input should be ").split(", unable to")[0].split(", got ")[0]
        if cut < len(loc) - 1:                     # inside the member: e.g. an item of list[int]
            msg = f"{loc[cut]} (item {'.'.join(map(str, loc[cut + 1:]))}: {msg})"
        prev = out[-1] if out else None
        if prev is not None and prev.get("_union") == field:   # pydantic lists a field's members together
            prev["msg"] += f" or {msg}"
            continue
        out.append({**e, "loc": field, "msg": f"should be {msg}", "_union": field})
    return out


def format_validation_error(err: pydantic.ValidationError, where: str,
                            model: type[pydantic.BaseModel] | None = None) -> str:
    """One line naming each failing field, the value given and what is wrong; a misspelt field
    of ``model`` (the validated config class) gets the closest known name."""
    parts = []
    for e in _merge_union_errors(err.errors()):
        loc = ".".join(str(x) for x in e["loc"]) or "(root)"
        if e["type"] == "extra_forbidden":
            known = _fields_at(model, tuple(e["loc"][:-1]))
            close = difflib.get_close_matches(str(e["loc"][-1]), known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else (f" (known: {', '.join(known)})" if known else "")
            parts.append(f"unknown field '{loc}'{hint}")
        elif e["type"] == "missing":
            parts.append(f"missing field '{loc}'")
        else:
            parts.append(f"'{loc}'={e.get('input')!r}: {e['msg']}")
    return f"{where}: " + "; ".join(parts)


class Registry:
    """Named parts of one kind; ``build`` validates a config and constructs the part."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, *, config: type[PartConfig], description: str = "") -> Callable:
        """Class decorator. The class is built as ``cls(config_instance, **context)``."""
        if not (isinstance(config, type) and issubclass(config, PartConfig)):
            raise TypeError(f"{self.kind}/{name}: config must subclass inrkit.registry.PartConfig")

        def deco(cls):
            if name in self._entries and self._entries[name].cls is not cls:
                raise ValueError(f"{self.kind}: '{name}' is already registered by {self._entries[name].cls!r}")
            doc = description or ((cls.__doc__ or "").strip().splitlines() or [""])[0]
            self._entries[name] = Entry(name, cls, config, doc)
            cls.registry_name = name
            cls.registry_kind = self.kind
            return cls

        return deco

    # -- lookup -------------------------------------------------------------------------
    def names(self, pattern: str = "*") -> list[str]:
        load_plugins()
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: str) -> bool:
        load_plugins()
        return name in self._entries

    def get(self, name: str) -> Entry:
        load_plugins()
        if name not in self._entries:
            known = sorted(self._entries)
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise InrkitError(
                f"unknown {self.kind[:-1]} '{name}'; known: {', '.join(known) or '(none)'}.{hint}"
                " (A part from a plugin needs the plugin installed.)"
            )
        return self._entries[name]

    def entries(self) -> list[Entry]:
        load_plugins()
        return [self._entries[n] for n in sorted(self._entries)]

    # -- configs ------------------------------------------------------------------------
    def validate(self, spec: dict[str, Any] | PartConfig, name: str | None = None) -> PartConfig:
        """``{'name': 'siren', 'width': 64}`` (or a name plus fields) → the entry's config."""
        if isinstance(spec, PartConfig):
            return spec
        spec = dict(spec or {})
        name = spec.pop("name", name)
        if name is None:
            raise ConfigError(f"{self.kind}: a part spec needs a 'name'")
        entry = self.get(name)
        # None means "not given" (timm's habit: CLI defaults must not override the part's own).
        spec = {k: v for k, v in spec.items() if v is not None}
        try:
            return entry.config(**spec)
        except pydantic.ValidationError as err:
            raise ConfigError(format_validation_error(err, f"{self.kind}/{name}", entry.config)) from None

    def build(self, name: str, context: dict[str, Any] | None = None, **config: Any):
        return self.create(name, self.validate(config, name=name), context)

    def create(self, name: str, config: PartConfig, context: dict[str, Any] | None = None):
        """Construct the part from a config ``validate`` already returned (no second validation)."""
        return self.get(name).cls(config, **(context or {}))


REGISTRIES: dict[str, Registry] = {kind: Registry(kind) for kind in KINDS}
domains = REGISTRIES["domains"]
inrs = REGISTRIES["inrs"]
hypernets = REGISTRIES["hypernets"]
encoders = REGISTRIES["encoders"]
decoders = REGISTRIES["decoders"]
priors = REGISTRIES["priors"]
likelihoods = REGISTRIES["likelihoods"]
datasets = REGISTRIES["datasets"]
models = REGISTRIES["models"]


def get_registry(kind: str) -> Registry:
    """The registry of one kind (``get_registry("inrs")`` is :data:`inrs`); a misspelt kind is an
    error naming the known ones and the closest match."""
    if kind not in REGISTRIES:
        close = difflib.get_close_matches(kind, KINDS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise InrkitError(f"unknown registry '{kind}'; known: {', '.join(KINDS)}.{hint}")
    return REGISTRIES[kind]


def list_parts(kind: str, pattern: str = "*") -> list[str]:
    """Sorted names registered under ``kind`` that match a shell-style wildcard, as timm's
    ``list_models('res*')``: ``list_parts("hypernets", "h*")`` → ``['hd']``."""
    return get_registry(kind).names(pattern)


def build(kind: str, name: str, context: dict[str, Any] | None = None, **config: Any):
    """Validate ``config`` against the entry's model and construct the part."""
    return get_registry(kind).build(name, context=context, **config)


def spec_of(part) -> dict[str, Any]:
    """The plain-data spec ``{'name': ..., **config}`` of a built part (what runs store)."""
    return {"name": part.registry_name, **part.config.model_dump(mode="json")}


_plugins_loaded = False


def load_plugins() -> None:
    """Import every ``inrkit.plugins`` entry point once and call it (it registers its parts)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in entry_points(group="inrkit.plugins"):
        try:
            hook = ep.load()
            if callable(hook):
                hook()
        except ImportError as err:
            raise InrkitError(f"plugin '{ep.name}' ({ep.value}) failed to load: {err}") from err

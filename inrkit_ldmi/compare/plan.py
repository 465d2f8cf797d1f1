"""Planning a comparison: the sweep points, the per-part overrides, and the fairness check.

The *axis* is the model section whose part changes from run to run (``model.hypernet`` for
``inrkit compare --hypernets``); every other field of a point's configs is the same, which
:func:`check_fair` checks before anything trains.
"""
from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import inrkit
from inrkit.config import deep_merge, parse_override, parse_part_spec, parse_value
from inrkit.errors import ConfigError
from inrkit.registry import SEED_MAX

from inrkit.recipe import Recipe

RUN_SECTIONS = ("model", "data", "train")
MODEL_FIELDS = ("domain", "encoder", "inr", "hypernet", "prior", "likelihood", "beta", "kl_reduction", "nll_reduction",
                "chunk")
# Steps of a minutes-only budget: the clock (the trainer's train.vae.max_minutes), not this number, ends such a run.
UNBOUNDED_STEPS = 1_000_000_000


@dataclass(frozen=True)
class Axis:
    """What a comparison varies: one part section of the model config.

    ``defaults``: the spec used for a name when the base config's part is another one.
    """

    section: str  # "hypernet": configs differ under model.hypernet
    kind: str  # its registry
    option: str  # the CLI option naming the parts, for messages
    noun: str  # what one part is called in messages
    defaults: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return f"model.{self.section}"


# The registry defaults are GASP's MLP (z → 256 → 512 → head) and a VAMoH-sized mixture of four.
HYPERNETS = Axis("hypernet", "hypernets", "--hypernets", "hypernetwork", {
    "hd": {"name": "hd"},
    "mlp": {"name": "mlp", "hidden": [256, 512]},
    "mixture": {"name": "mixture"},
})
# The prior comparison (inrkit_ldmi.compare_priors) varies model.prior; its specs are the registry defaults.
PRIORS = Axis("prior", "priors", "--priors", "prior", {
    "gaussian": {"name": "gaussian"}, "flow": {"name": "flow"}, "diffusion": {"name": "diffusion"}})
AXES: dict[str, Axis] = {"hypernet": HYPERNETS, "prior": PRIORS}
DEFAULT_SPECS = HYPERNETS.defaults


def get_axis(axis: str | Axis) -> Axis:
    if isinstance(axis, Axis):
        return axis
    if axis not in AXES:
        raise ConfigError(f"unknown comparison axis '{axis}'; known: {', '.join(AXES)}")
    return AXES[axis]


def normalise_key(key: str, axis: str | Axis = HYPERNETS) -> str:
    """``inr.width`` → ``model.inr.width``; ``train.vae.lr`` and ``hypernet.mlp.hidden`` (the axis's
    per-part form) stay."""
    axis = get_axis(axis)
    first = key.split(".", 1)[0]
    if first in RUN_SECTIONS or first == axis.section:
        return key
    if first in MODEL_FIELDS:
        return f"model.{key}"
    raise ConfigError(f"'{key}': not a config field (start with model., data., train., {axis.section}.<name>. "
                      f"or one of {', '.join(f for f in MODEL_FIELDS if f != axis.section)})")


def nested(keys: Sequence[str], value: Any) -> dict[str, Any]:
    update: Any = value
    for key in reversed(keys):
        update = {key: update}
    return update


def split_overrides(items: Iterable[str] | None, axis: str | Axis = HYPERNETS,
                    ) -> tuple[list[str], dict[str, list[tuple[list[str], Any]]]]:
    """``--set`` items → (run-config overrides, part name → [(field path, value)])."""
    axis = get_axis(axis)
    general: list[str] = []
    per_part: dict[str, list[tuple[list[str], Any]]] = {}
    for item in items or []:
        keys, value = parse_override(item)
        key = normalise_key(".".join(keys), axis)
        keys = key.split(".")
        if keys[0] == axis.section:
            if len(keys) < 3:
                raise ConfigError(f"--set {item}: per-{axis.section} overrides read {axis.section}.<name>.<field>=value")
            per_part.setdefault(keys[1], []).append((keys[2:], value))
        else:
            general.append(f"{key}={item.split('=', 1)[1]}")
    return general, per_part


def parse_sweep(sweep: str | Sequence[str] | dict[str, Sequence[Any]] | None,
                axis: str | Axis = HYPERNETS) -> list[tuple[str, list[Any]]]:
    """``"inr.width=64,128"`` (or several, or ``{"inr.width": [64, 128]}``) → [(key, values)].

    Values are YAML: ``hypernet.mlp.hidden=[64],[128,128]`` sweeps two lists.
    """
    if sweep is None:
        return []
    if isinstance(sweep, dict):
        items = [(k, list(v)) for k, v in sweep.items()]
    else:
        items = []
        for text in [sweep] if isinstance(sweep, str) else sweep:
            key, eq, rest = text.partition("=")
            values = parse_value(f"[{rest}]") if eq and rest.strip() else None
            if not key.strip() or not isinstance(values, list) or not values:
                raise ConfigError(f"--sweep '{text}': expected key=value1,value2,...")
            items.append((key.strip(), values))
    out = []
    for key, values in items:
        if not values:
            raise ConfigError(f"--sweep {key}: no values")
        out.append((normalise_key(key, axis), values))
    if len({k for k, _ in out}) != len(out):
        raise ConfigError("--sweep: the same field is swept twice")
    return out


def with_inr(config: dict[str, Any], inr: str | dict[str, Any] | None) -> dict[str, Any]:
    """``--inr siren:width=512`` merges into the config's INR; another family's name replaces it."""
    if inr is None:
        return config
    spec = parse_part_spec(inr) if isinstance(inr, str) else dict(inr)
    if not spec:
        raise ConfigError(f"--inr: expected NAME[:key=value,...], got {inr!r}")
    current = config["model"]["inr"]
    if spec.get("name", current["name"]) == current["name"]:
        spec = {**current, **spec}
    return {**config, "model": {**config["model"], "inr": spec}}


def part_spec(name: str, base: dict[str, Any], overrides: list[tuple[list[str], Any]],
              axis: str | Axis = HYPERNETS) -> dict[str, Any]:
    """The base config's part if it is this one, else the axis's default spec for it; then this
    part's own ``<section>.<name>.*`` overrides."""
    defaults = get_axis(axis).defaults
    spec = copy.deepcopy(base) if base.get("name") == name else copy.deepcopy(defaults.get(name, {"name": name}))
    for keys, value in overrides:
        spec = deep_merge(spec, nested(keys, value))
    spec["name"] = name
    return spec


def hypernet_spec(name: str, base: dict[str, Any], overrides: list[tuple[list[str], Any]]) -> dict[str, Any]:
    return part_spec(name, base, overrides, HYPERNETS)


def config_differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted paths at which two plain-data configs differ (a whole sub-tree counts once per leaf)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in a or key not in b:
                out.append(path)
            else:
                out += config_differences(a[key], b[key], path)
        return out
    return [] if a == b else [prefix]


def plan_configs(
    hypernets: Sequence[str],
    modality: str | None,
    preset: str | None,
    data: str | Path | None,
    inr: str | dict[str, Any] | None,
    budget_steps: int | None,
    budget_minutes: float | None,
    sweep: Any,
    set_overrides: Iterable[str] | None,
    device: str | None,
    config_file: str | Path | None = None,
    axis: str | Axis = HYPERNETS,
) -> list[dict[str, Any]]:
    """Every point of the comparison: ``{label, overrides, configs: {part name: resolved run config}}``.

    ``hypernets``: the names of the parts compared along ``axis`` (hypernetworks by default).
    ``budget_minutes`` becomes the trainer's ``train.vae.max_minutes``. The seed is left at the
    base config's; :func:`inrkit_ldmi.compare.compare` sets ``train.seed`` per run. Raises
    ConfigError if two parts' configs differ anywhere but under the axis's section.
    """
    axis = get_axis(axis)
    names = check_names(hypernets, axis)
    general, per_part = split_overrides(set_overrides, axis)
    unknown = sorted(set(per_part) - set(names))
    if unknown:
        raise ConfigError(f"--set {axis.section}.{unknown[0]}.*: '{unknown[0]}' is not among {axis.option} {','.join(names)}")
    if budget_steps is not None and budget_steps < 1:
        raise ConfigError(f"--budget-steps must be >= 1, got {budget_steps}")
    if budget_minutes is not None and not budget_minutes > 0:
        raise ConfigError(f"--budget-minutes must be > 0, got {budget_minutes}")
    if device is not None:
        general.append(f"train.device={device}")
    if preset is None and config_file is None:
        preset = "paper"
    base = Recipe.resolve("ldmi", preset, config_file, data, general, modality=modality).config
    base = with_inr(base, inr)
    steps = budget_steps if budget_steps is not None else (UNBOUNDED_STEPS if budget_minutes is not None else None)
    if steps is not None:
        base = deep_merge(base, {"train": {"vae": {"steps": steps}}})
    if budget_minutes is not None:
        base = deep_merge(base, {"train": {"vae": {"max_minutes": budget_minutes}}})
    base = resolved(base)

    sweeps = parse_sweep(sweep, axis)
    points = []
    for values in itertools.product(*[v for _, v in sweeps]) if sweeps else [()]:
        overrides = {key: value for (key, _), value in zip(sweeps, values)}
        label = ",".join(f"{key.removeprefix('model.')}={short(v)}" for key, v in overrides.items())
        point = base
        point_parts = {n: list(per_part.get(n, [])) for n in names}
        for key, value in overrides.items():
            keys = key.split(".")
            if keys[0] == axis.section:
                if keys[1] not in names or len(keys) < 3:
                    raise ConfigError(f"--sweep {key}: expected {axis.section}.<one of {','.join(names)}>.<field>")
                point_parts[keys[1]].append((keys[2:], value))
            else:
                point = deep_merge(point, nested(keys, value))
        try:
            point = resolved(point)
            configs = {}
            for n in names:
                cfg = copy.deepcopy(point)
                cfg["model"][axis.section] = part_spec(n, point["model"][axis.section], point_parts[n], axis)
                configs[n] = resolved(cfg)
        except ConfigError as err:
            raise ConfigError(f"sweep point {label}: {err}" if label else str(err)) from None
        check_fair(configs, axis)
        points.append({"label": label, "overrides": overrides, "configs": configs})
    return points


def resolved(config: dict[str, Any]) -> dict[str, Any]:
    return Recipe.from_config(config).config


def check_fair(configs: dict[str, dict[str, Any]], axis: str | Axis = HYPERNETS) -> None:
    """The comparison's promise: runs of one point differ only under the axis's section."""
    where = get_axis(axis).path
    for (a, ca), (b, cb) in itertools.combinations(list(configs.items()), 2):
        bad = [p for p in config_differences(ca, cb) if not (p == where or p.startswith(where + "."))]
        if bad:
            raise ConfigError(f"the configs of {a} and {b} differ outside {where} ({', '.join(bad)}); "
                              "the comparison would not be fair")


def check_names(names: Sequence[str] | str, axis: str | Axis = HYPERNETS) -> list[str]:
    axis = get_axis(axis)
    out = [n.strip() for n in (names.split(",") if isinstance(names, str) else names)]
    if not any(out):
        raise ConfigError(f"{axis.option}: give at least one {axis.noun} name")
    if not all(out):
        raise ConfigError(f"{axis.option} '{','.join(out)}': an empty name between commas")
    if len(set(out)) != len(out):
        raise ConfigError(f"{axis.option}: a name appears twice in {','.join(out)}")
    reg = inrkit.get_registry(axis.kind)
    for n in out:
        reg.get(n)  # unknown names fail here with the known ones and the closest match
    return out


def short(value: Any) -> str:
    return str(value).replace(" ", "")


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "point"


def seed_list(seeds: int | Sequence[int]) -> list[int]:
    if isinstance(seeds, int):
        if seeds < 1:
            raise ConfigError(f"--seeds: expected at least one seed, got {seeds}")
        return list(range(seeds))
    out = [int(s) for s in seeds]
    if not out or len(set(out)) != len(out):
        raise ConfigError(f"--seeds: expected distinct seeds, got {out}")
    if not all(0 <= s <= SEED_MAX for s in out):
        raise ConfigError(f"--seeds: every seed must be in 0..{SEED_MAX}, got {out}")
    return out

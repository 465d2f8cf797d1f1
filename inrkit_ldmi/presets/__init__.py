"""Shipped run configs, ``{modality}-{preset}.yaml``, and the assembly of a run config from one.

The YAML files sit inside this package so that wheels carry them (``*.yaml`` package data).
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from inrkit.config import deep_merge, load_yaml
from inrkit.errors import ConfigError

from ..config import apply_sets, resolve_run_config

PRESET_DIR = Path(__file__).resolve().parent


def available_presets() -> dict[str, list[str]]:
    """modality → preset names, from the shipped files."""
    out: dict[str, list[str]] = {}
    for f in sorted(PRESET_DIR.glob("*-*.yaml")):
        modality, preset = f.stem.split("-", 1)
        out.setdefault(modality, []).append(preset)
    return out


def load_preset(modality: str, preset: str = "paper") -> dict[str, Any]:
    known = available_presets()
    if modality not in known:
        close = difflib.get_close_matches(modality, list(known), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"no LDMI presets for modality '{modality}'; known: {', '.join(known)}.{hint}")
    if preset not in known[modality]:
        close = difflib.get_close_matches(preset, known[modality], n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown preset '{preset}' for modality '{modality}'; known: {', '.join(known[modality])}.{hint}")
    return load_yaml(PRESET_DIR / f"{modality}-{preset}.yaml")


def preset_config(
    modality: str | None = None,
    preset: str | None = None,
    overrides: list[str] | None = None,
    config_file: str | Path | None = None,
    data: str | Path | None = None,
) -> dict[str, Any]:
    """The resolved run config: preset ← ``config_file`` ← ``data`` ← ``--set`` overrides.

    With a ``config_file`` naming ``model.domain.name``, the modality may be left out; with a
    config file and no ``preset``, the file is taken as complete (no preset underneath).
    """
    file_cfg = load_yaml(config_file) if config_file is not None else {}
    # a run's config.yaml reused as a recipe: how that run came about is not part of it
    for key in ("paradigm", "hyper_transform"):
        file_cfg.pop(key, None)
    file_modality = _domain_name(file_cfg)
    modality = modality or file_modality
    if modality is None:
        raise ConfigError("--modality is required (or a --config file whose model.domain names it)")
    if config_file is not None and preset is None:
        base: dict[str, Any] = {}
    else:
        base = load_preset(modality, preset or "paper")
    config = deep_merge(base, file_cfg)
    if _domain_name(config) is None:
        config = deep_merge(config, {"model": {"domain": {"name": modality}}})
    elif _domain_name(config) != modality:
        raise ConfigError(f"--modality {modality} does not match the config's model.domain.name '{_domain_name(config)}'")
    if data is not None:
        # A user's path is read by another dataset than the built-in one: the preset's dataset
        # fields (n_items...) do not apply to it, those of the user's own file still do.
        fields = {k: v for k, v in (file_cfg.get("data") or {}).items() if k != "path"}
        config["data"] = {"path": str(data), **fields}
    config = apply_sets(config, overrides)
    return resolve_run_config(config)


def _domain_name(config: dict[str, Any]) -> str | None:
    domain = (config.get("model") or {}).get("domain")
    if isinstance(domain, str):
        return domain
    if isinstance(domain, dict):
        return domain.get("name")
    return None

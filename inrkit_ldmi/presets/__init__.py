"""Shipped run configs, ``{modality}-{preset}.yaml``: LDMI's presets (its recipe's, :mod:`inrkit.recipe`).

A preset resolved into a run config is ``Recipe.resolve("ldmi", preset, modality=...).config``: the
recipe is the one place presets, config files, data paths and ``--set`` meet.

The YAML files sit inside this package so that wheels carry them (``*.yaml`` package data).
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from inrkit.config import load_yaml
from inrkit.errors import ConfigError

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


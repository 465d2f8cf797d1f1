"""The reference setting behind each value of a preset (``references.yaml``), for ``debug config``.

A preset's YAML comments explain it to a reader of the file; this table travels to the resolved
config, so that ``inrkit debug config --modality M --preset paper`` can print every setting taken
from the paper's code next to the value it resolved to (``--set`` overrides included).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from inrkit.config import load_yaml

REFERENCES_FILE = Path(__file__).resolve().parent / "references.yaml"
_MISSING = object()


def preset_references(modality: str, preset: str) -> dict[str, str]:
    """Dotted config path → the reference setting it mirrors; empty for presets without any."""
    table = load_yaml(REFERENCES_FILE) or {}
    return dict(table.get(f"{modality}-{preset}") or {})


def lookup(config: dict[str, Any], dotted: str) -> Any:
    node: Any = config
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return _MISSING
        node = node[key]
    return node


def annotated_references(config: dict[str, Any], modality: str, preset: str) -> list[str]:
    """``path: value  # reference setting`` lines for the resolved ``config`` (YAML comments)."""
    lines = []
    for path, note in preset_references(modality, preset).items():
        value = lookup(config, path)
        shown = "<not set>" if value is _MISSING else _flow(value)
        lines.append(f"{path}: {shown}  # {note}")
    return lines


def _flow(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    return str(value)

"""Configs as plain data: YAML files, presets and dotted ``--set a.b=value`` overrides."""
from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError, os_error_message

SCHEMA_VERSION = 1


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8")) or {}
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not a YAML text file (not UTF-8: byte {err.start} is {err.object[err.start]:#04x})") from None
    except OSError as err:
        raise ConfigError(f"cannot read config file {os_error_message(err, path)}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping, got {type(data).__name__}")
    return data


def dump_yaml(data: dict[str, Any], path: str | Path) -> None:
    from .io import atomic_write_text

    atomic_write_text(Path(path), yaml.safe_dump(data, sort_keys=False))


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; a part spec whose ``name`` changes is replaced, not merged."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        old = out.get(key)
        if isinstance(old, dict) and isinstance(value, dict) and value.get("name", old.get("name")) == old.get("name"):
            out[key] = deep_merge(old, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


_YAML11_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def parse_value(text: str) -> Any:
    """``--set`` values are YAML scalars/lists: ``3``, ``1e-4``, ``true``, ``[2, 4]``, ``siren``."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str) and _YAML11_FLOAT.match(value.strip()):
        return float(value)  # YAML 1.1 reads 1e-4 (no dot) as a string
    return value


def parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"--set expects key=value, got '{item}'")
    key, value = item.split("=", 1)
    keys = [k for k in key.strip().split(".")]
    if not all(keys):
        raise ConfigError(f"--set: bad key '{key}'")
    return keys, parse_value(value)


def apply_overrides(config: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Apply ``a.b.c=value`` strings to a nested dict (missing levels are created).

    Merged as :func:`deep_merge` does, so ``--set model.hypernet.name=mlp`` replaces the whole
    part spec (the MLP's defaults, not the HD's fields).
    """
    out = copy.deepcopy(config)
    for item in overrides or []:
        keys, value = parse_override(item)
        node: Any = out
        for k in keys[:-1]:
            node = node.get(k) if isinstance(node, dict) else None
            if node is not None and not isinstance(node, dict):
                raise ConfigError(f"--set {item}: '{k}' is a value, not a section")
        update: Any = value
        for key in reversed(keys):
            update = {key: update}
        out = deep_merge(out, update)
    return out


def get_path(config: dict[str, Any], dotted: str) -> Any:
    node: Any = config
    for k in dotted.split("."):
        if not isinstance(node, dict) or k not in node:
            raise ConfigError(f"config has no field '{dotted}'")
        node = node[k]
    return node


def _split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside brackets and braces, so ``hidden=[256,512]`` stays one item."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == sep and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return [s.strip() for s in items if s.strip()]


def parse_part_spec(text: str) -> dict[str, Any]:
    """``"siren:depth=5,width=256"`` → ``{"name": "siren", "depth": 5, "width": 256}``.

    Values are YAML scalars (or lists in brackets). ``"siren"`` alone is just a name;
    ``"dim=96,n_heads=4"`` (no colon) gives fields without a name.
    """
    text = text.strip()
    if ":" in text.split("=", 1)[0]:
        name, _, rest = text.partition(":")
        spec: dict[str, Any] = {"name": name.strip()}
    elif "=" not in text:
        return {"name": text} if text else {}
    else:
        spec, rest = {}, text
    if "name" in spec and not spec["name"]:
        raise ConfigError(f"part spec '{text}': empty name before ':'")
    for item in _split_top_level(rest):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"part spec '{text}': expected key=value, got '{item}'")
        spec[key.strip()] = parse_value(value.strip())
    return spec

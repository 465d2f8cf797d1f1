"""Point tables from users (CSV/TSV/whitespace text): named numeric columns, units in the header.

A table has an optional comment block (``# units: degC`` sets the units of every value column),
one header line of column names (``value [degC]`` or ``value (degC)`` also give units), then
one point per line. Every error names the file and, where there is one, the line.
"""
from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import numpy as np

from inrkit.errors import DataError

_UNITS_IN_NAME = re.compile(r"^\s*([^\[\(]*?)\s*[\[\(]\s*([^\]\)]*)\s*[\]\)]\s*$")
_UNITS_COMMENT = re.compile(r"^#\s*units?\s*[:=]\s*(.+?)\s*$", re.I)


def _split(line: str) -> list[str]:
    if "," in line:
        return next(csv.reader([line]))
    if ";" in line:
        return line.split(";")
    return line.split("\t") if "\t" in line else line.split()


def read_table(path: Path, columns: dict[str, tuple[str, ...]]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """``columns``: our name → accepted header names (lower case). Returns float arrays and units per column."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: unreadable as a text table ({type(err).__name__})") from None
    units: dict[str, str] = {}
    rows: list[tuple[int, list[str]]] = []
    header: list[str] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            m = _UNITS_COMMENT.match(line)
            if m:
                units["*"] = m.group(1)
            continue
        if header is None:
            header = [c.strip().strip('"').strip() for c in _split(line)]
            continue
        rows.append((number, [c.strip() for c in _split(line)]))
    if header is None:
        raise DataError(f"{path}: empty file (no header line, no points)")
    names: list[str] = []
    for h in header:
        m = _UNITS_IN_NAME.match(h)
        name = (m.group(1) if m else h).strip().lower()
        names.append(name)
        if m and m.group(2):
            units[name] = m.group(2)
    where: dict[str, int] = {}
    missing = []
    for ours, accepted in columns.items():
        hit = next((i for i, n in enumerate(names) if n in accepted), None)
        if hit is None:
            missing.append(f"{ours} (or {', '.join(accepted[1:])})" if len(accepted) > 1 else ours)
        else:
            where[ours] = hit
    if missing:
        raise DataError(f"{path}: no column {'; '.join(missing)}; the header has {', '.join(header) or '(nothing)'}")
    if not rows:
        raise DataError(f"{path}: no points below the header")
    out = {ours: np.empty(len(rows)) for ours in columns}
    for r, (number, cells) in enumerate(rows):
        for ours, i in where.items():
            cell = cells[i] if i < len(cells) else ""
            try:
                v = float(cell)
            except ValueError:
                raise DataError(f"{path}: line {number}: {ours} is {cell!r}, not a number") from None
            if not math.isfinite(v):
                raise DataError(f"{path}: line {number}: {ours} is {cell!r} (NaN or inf); drop the point instead")
            out[ours][r] = v
    col_units = {ours: units.get(names[i], units.get("*", "")) for ours, i in where.items()}
    return out, col_units

"""Units as files label them: temperatures (kelvin, degrees Celsius) under their many spellings,
and other quantities (m/s, m2/s2, ...) under the CF, UDUNITS and plain spellings of one unit."""
from __future__ import annotations

import re

from inrkit.errors import DataError

_KELVIN = {"k", "kelvin", "kelvins", "degk", "degreesk", "degreek"}
_CELSIUS = {"c", "degc", "celsius", "degreesc", "degreec", "degreecelsius", "degreescelsius", "degcelsius"}


def _canonical(units: str) -> str:
    """One spelling of a product of powers of symbols: 'm s**-1', 'm s-1', 'm.s^-1', 'm/s' -> 'm s-1';
    'm**2 s**-2', 'm2/s2', 'm^2 s^-2' -> 'm2 s-2'. Case is kept (MPa is not mPa); text it cannot read is returned stripped."""
    text = units.strip().replace("**", "^").replace("·", " ").replace("*", " ").replace(".", " ")
    num, _, den = text.partition("/")
    if "/" in den:
        return units.strip()
    powers: dict[str, int] = {}
    for part, sign in ((num, 1), (den, -1)):
        for token in part.split():
            m = re.fullmatch(r"([A-Za-z]+)\^?(-?\d+)?", token)
            if not m:
                return units.strip()
            powers[m.group(1)] = powers.get(m.group(1), 0) + sign * int(m.group(2) or 1)
    return " ".join(f"{k}{'' if v == 1 else v}" for k, v in sorted(powers.items(), key=lambda kv: (-kv[1], kv[0])) if v)


def unit_kind(units: str) -> str:
    key = units.strip().lower().replace("°", "deg").replace("_", "").replace(" ", "")
    if key in _KELVIN:
        return "K"
    if key in _CELSIUS:
        return "degC"
    return _canonical(units)


def unit_offset(file_units: str | None, domain_units: str, where: str) -> float:
    """What to add to values in ``file_units`` to express them in ``domain_units``."""
    if not file_units:
        return 0.0  # unlabelled data is taken to be in the domain's units
    src, dst = unit_kind(file_units), unit_kind(domain_units)
    if src == dst:
        return 0.0
    if (src, dst) == ("degC", "K"):
        return 273.15
    if (src, dst) == ("K", "degC"):
        return -273.15
    raise DataError(f"{where}: units '{file_units}' cannot be converted to the domain's '{domain_units}'")


def resolve_units(file_units: str | None, given: str | None, where: str, given_as: str) -> str | None:
    """The units of a file's values: its own attribute, or ``given`` (``given_as`` names the
    setting, e.g. ``data.units``) where it has none; both, disagreeing, are a DataError."""
    if file_units and given and unit_kind(file_units) != unit_kind(given):
        raise DataError(f"{where}: the file says units '{file_units}' but {given_as} says '{given}'")
    return file_units or given

"""Temperature units as files label them: kelvin and degrees Celsius under their many spellings."""
from __future__ import annotations

from inrkit.errors import DataError

_KELVIN = {"k", "kelvin", "kelvins", "degk", "degreesk", "degreek"}
_CELSIUS = {"c", "degc", "celsius", "degreesc", "degreec", "degreecelsius", "degreescelsius", "degcelsius"}


def unit_kind(units: str) -> str:
    key = units.strip().lower().replace("°", "deg").replace("_", "").replace(" ", "")
    if key in _KELVIN:
        return "K"
    if key in _CELSIUS:
        return "degC"
    return units.strip()


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

"""Units as files label them: temperatures (kelvin, degrees Celsius, degrees Fahrenheit) under
their many spellings, and other quantities (m/s, m2/s2, ...) under the CF, UDUNITS and plain
spellings of one unit."""
from __future__ import annotations

import re
from dataclasses import dataclass

from inrkit.errors import DataError

_KELVIN = {"k", "kelvin", "kelvins", "degk", "degreesk", "degreek"}
_CELSIUS = {"c", "degc", "celsius", "degreesc", "degreec", "degreecelsius", "degreescelsius", "degcelsius"}
_FAHRENHEIT = {"f", "degf", "fahrenheit", "degreesf", "degreef", "degreefahrenheit", "degreesfahrenheit", "degfahrenheit"}
# each temperature kind as kelvin = scale * value + offset
_TO_KELVIN = {"K": (1.0, 0.0), "degC": (1.0, 273.15), "degF": (5.0 / 9.0, 273.15 - 32.0 * 5.0 / 9.0)}


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
    if key in _FAHRENHEIT:
        return "degF"
    return _canonical(units)


@dataclass(frozen=True)
class Conversion:
    """``value * scale + offset``: values in a file's units expressed in the domain's. The identity
    and the kelvin/Celsius offsets leave the values' bits as an addition alone would (scale 1)."""
    scale: float = 1.0
    offset: float = 0.0

    def __call__(self, values):
        return (values if self.scale == 1.0 else values * self.scale) + self.offset


def unit_conversion(file_units: str | None, domain_units: str, where: str) -> Conversion:
    """How values in ``file_units`` become values in ``domain_units`` (temperatures: K, degC and
    degF into one another; any other units only into their own kind)."""
    if not file_units:
        return Conversion()  # unlabelled data is taken to be in the domain's units
    src, dst = unit_kind(file_units), unit_kind(domain_units)
    if src == dst:
        return Conversion()
    if src in _TO_KELVIN and dst in _TO_KELVIN:
        (a_s, b_s), (a_d, b_d) = _TO_KELVIN[src], _TO_KELVIN[dst]
        return Conversion(a_s / a_d, (b_s - b_d) / a_d)
    raise DataError(f"{where}: units '{file_units}' cannot be converted to the domain's '{domain_units}'")


def resolve_units(file_units: str | None, given: str | None, where: str, given_as: str) -> str | None:
    """The units of a file's values: its own attribute, or ``given`` (``given_as`` names the
    setting, e.g. ``data.units``) where it has none; both, disagreeing, are a DataError."""
    if file_units and given and unit_kind(file_units) != unit_kind(given):
        raise DataError(f"{where}: the file says units '{file_units}' but {given_as} says '{given}'")
    return file_units or given


def is_temperature(units: str) -> bool:
    return unit_kind(units) in _TO_KELVIN


def metric_suffix(units: str) -> str:
    """The units part of a metric name (``rmse_<suffix>``): ``k`` for kelvin and Celsius (an RMSE is
    a temperature difference, the same number in both), ``degf`` for Fahrenheit, else the units in
    one spelling made of name characters: 'm/s' and 'm s**-1' -> ``m_per_s``, 'm2 s-2' ->
    ``m2_per_s2``, 'kg m-2 s-1' -> ``kg_per_m2_s``, 'mm' -> ``mm``, '%' -> ``percent``, '1' and
    'kg kg-1' -> ``dimensionless``; words stay words ('m of water equivalent')."""
    text = (units or "").strip()
    if not text:
        return "model_units"
    if is_temperature(text):
        return "degf" if unit_kind(text) == "degF" else "k"
    if " " in text and not re.search(r"[\d/*^.-]", text):
        return re.sub(r"[^0-9A-Za-z]+", "_", text).strip("_")  # a phrase, not a product of symbols
    canon = "" if text == "1" else _canonical(text)
    parts = canon.split()
    if not parts:
        return "dimensionless"
    if all(re.fullmatch(r"[A-Za-z]+-?\d*", q) for q in parts):
        num = [q for q in parts if "-" not in q]
        den = sorted(q.replace("-", "").removesuffix("1") if q.endswith("-1") else q.replace("-", "") for q in parts if "-" in q)
        text = "_".join(num or ["1"]) + ("_per_" + "_".join(den) if den else "")
    else:
        text = canon.replace("/", " per ").replace("^", "")
    return re.sub(r"[^0-9A-Za-z]+", "_", text.replace("%", "percent")).strip("_") or "model_units"


def rmse_name(units: str) -> str:
    """``rmse_k`` for a temperature domain, ``rmse_m_per_s`` for winds: see :func:`metric_suffix`."""
    return f"rmse_{metric_suffix(units)}"

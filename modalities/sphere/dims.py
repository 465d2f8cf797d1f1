"""Which dimension of a variable is latitude, longitude or time, under the names files give them.

By name first (``latitude``/``lat``, ``longitude``/``lon``, ``time``/``valid_time``: ERA5, CMIP,
WeatherBench2); else by what the CF conventions put on the coordinate, so that files written by
other tools are read too: ``units`` degrees_north/degrees_east or ``standard_name`` latitude/
longitude (NCL's ``g0_lat_0``/``g0_lon_1``), a coordinate of dates (decoded datetime64 or cftime,
``standard_name: time`` or ``axis: T``: NCL's ``initial_time0_hours``). A grid indexed by plain
``y``/``x`` dimensions with 1-D ``latitude(y)``/``longitude(x)`` coordinates is re-indexed by them.
"""
from __future__ import annotations

import numpy as np

LAT_NAMES = ("latitude", "lat")
LON_NAMES = ("longitude", "lon")
TIME_NAMES = ("time", "valid_time")

_UNITS = {
    LAT_NAMES: {"degrees_north", "degree_north", "degrees_n", "degree_n", "degreesn", "degreen"},
    LON_NAMES: {"degrees_east", "degree_east", "degrees_e", "degree_e", "degreese", "degreee"},
}
_STANDARD = {LAT_NAMES: "latitude", LON_NAMES: "longitude", TIME_NAMES: "time"}


def is_dates(values) -> bool:
    """Decoded dates: numpy datetime64, or cftime objects (non-standard calendars)."""
    v = np.asarray(values)
    if np.issubdtype(v.dtype, np.datetime64):
        return True
    return v.dtype == object and v.size > 0 and type(v.flat[0]).__module__.split(".")[0] == "cftime"


def _cf_match(coord, names: tuple[str, ...]) -> bool:
    attrs = {k: str(v).strip().lower() for k, v in coord.attrs.items() if isinstance(v, str)}
    if attrs.get("standard_name") == _STANDARD.get(names):
        return True
    if names == TIME_NAMES:
        return attrs.get("axis") == "t" or is_dates(coord.values)
    return attrs.get("units") in _UNITS.get(names, ())


def find_dim(da, names: tuple[str, ...]) -> str | None:
    """The dimension of ``da`` named one of ``names``, else the one whose coordinate CF marks as it."""
    for d in da.dims:
        if str(d).lower() in names:
            return d
    for d in da.dims:
        if d in da.coords and _cf_match(da[d], names):
            return d
    return None


def index_by_coords(da):
    """``da`` with plain ``y``/``x`` dimensions swapped for the 1-D latitude/longitude coordinates
    along them, where that makes a latitude x longitude grid (not where both run along one
    dimension: those are scattered points, which the observation readers handle)."""
    swaps: dict = {}
    for names in (LAT_NAMES, LON_NAMES):
        if find_dim(da, names) is not None:
            continue
        hit = next((n for n, c in da.coords.items() if c.ndim == 1 and n not in da.dims
                    and (str(n).lower() in names or _cf_match(c, names))), None)
        if hit is None:
            return da  # no grid to make: left to the caller's message
        swaps.setdefault(da[hit].dims[0], []).append(hit)
    if not swaps or any(len(v) > 1 for v in swaps.values()):
        return da
    return da.swap_dims({d: v[0] for d, v in swaps.items()})


def scalar_time(da) -> str | None:
    """A 0-d time coordinate (a file of one step whose time is no dimension, as CDS writes ``valid_time``)."""
    for name, coord in da.coords.items():
        if coord.ndim == 0 and (str(name).lower() in TIME_NAMES or _cf_match(coord, TIME_NAMES)):
            return name
    return None

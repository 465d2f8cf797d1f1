"""What every sphere dataset shares on the way to the domain's grid: the regrid option, the regridder
from a source's latitudes/longitudes, the ``meta`` record a run keeps, and the line said once at
the start of training about the conversion (grid, units, scaling)."""
from __future__ import annotations

import numpy as np
import pydantic

from inrkit.errors import DataError

from .regrid import make_regridder
from .units import unit_kind

REGRID = pydantic.Field("bilinear", description="bilinear, or conservative (area-weighted; use it to coarsen)")


def coverage_gap(lat, lon) -> str | None:
    """What a lat/lon grid leaves out of the globe (None: it is global). Global means latitudes
    reaching within two spacings of each pole (cell centres sit half a spacing away, Gaussian
    grids about 1.5) and no longitude gap wider than two spacings, around the circle."""
    lat = np.sort(np.asarray(lat, np.float64).ravel())
    lon = np.unique(np.mod(np.asarray(lon, np.float64).ravel(), 360.0))
    if len(lat) < 2 or len(lon) < 2:
        return f"a {len(lat)}x{len(lon)} grid"
    d_lat = float(np.median(np.diff(lat)))
    gaps = np.diff(np.concatenate([lon, lon[:1] + 360.0]))
    d_lon = float(np.median(gaps))
    missing = []
    if lat[-1] < 90 - 2 * d_lat - 1e-6 or lat[0] > -90 + 2 * d_lat + 1e-6:
        missing.append(f"latitudes {lat[0]:g} to {lat[-1]:g}")
    if gaps.max() > 2 * d_lon + 1e-6:
        end = int(np.argmax(gaps))
        start_lon, stop_lon = lon[(end + 1) % len(lon)], lon[end]
        missing.append(f"longitudes {start_lon:g} to {stop_lon:g} (east, mod 360)")
    return " and ".join(missing) if missing else None


def domain_regridder(lat, lon, domain, where: str, method: str = "bilinear"):
    """A regridder from the source grid (``lat``, ``lon`` in degrees) to the domain's; a bad grid is a
    :class:`DataError` naming ``where``, and so is a regional one: the domain is the whole sphere,
    and a regional field would be stretched over it from its edges."""
    gap = coverage_gap(lat, lon)
    if gap is not None:
        raise DataError(f"{where}: the grid covers only {gap}; the sphere domain is the whole globe"
                        " (give global fields, or fill the rest before training)")
    try:
        return make_regridder(method, lat, lon, domain.latitudes(), domain.longitudes())
    except ValueError as err:
        raise DataError(f"{where}: bad latitude/longitude grid ({err})") from None


def dataset_meta(domain, cfg, source: str, **extra) -> dict:
    """What a run records of a sphere dataset (its ``meta``): source, split, grid, units and scaling."""
    c = domain.config
    return {
        "source": source,
        "split": cfg.split,
        "grid": list(domain.grid_shape),
        "layout": c.layout,
        "units": c.variable_units,
        "t_min": c.t_min,
        "t_max": c.t_max,
        "scaling": "x = 2 * (T - t_min) / (t_max - t_min) - 1",
        **({"regrid": cfg.regrid} if hasattr(cfg, "regrid") else {}),
        **extra,
    }


def conversion_note(domain, what: str, source_grid: tuple[int, int] | None, units: str | None,
                    assumed: bool = False, method: str = "bilinear") -> str:
    """What the fields become, said once at the start of training: grid, units, scaling
    (``assumed``: the files name no units, so they are taken to be the domain's; ``method``: the regridding)."""
    c = domain.config
    n_lat, n_lon = domain.grid_shape
    grid = "" if source_grid is None else f" on a {source_grid[0]}x{source_grid[1]} latitude x longitude grid"
    same = source_grid is not None and tuple(source_grid) == (n_lat, n_lon)
    how = "are kept on" if same else (
        "are regridded (bilinear, periodic in longitude) to" if method == "bilinear" else f"are regridded ({method}) to")
    unit_text = f", converted from {units} to {c.variable_units}" if units and unit_kind(units) != unit_kind(c.variable_units) else ""
    if assumed:
        unit_text = f", taken to be in {c.variable_units} (the files name no units: set data.units if they are not)"
    return (f"{what}{grid} {how} the {n_lat}x{n_lon} training grid ({c.layout}){unit_text}, scaled to"
            f" x = 2 * (T - {c.t_min:g}) / ({c.t_max:g} - {c.t_min:g}) - 1; change the grid with"
            f" --set model.domain.n_lat=N --set model.domain.n_lon=M")

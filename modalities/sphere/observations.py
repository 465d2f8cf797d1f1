"""A user's own sphere data: station tables, scattered or gapped NetCDF/zarr fields, whole fields.

``read_observations`` gives the points where values are known, as unit-sphere coordinates and
model-space values (nothing is moved onto a grid): a CSV/TSV of ``lat, lon, value`` (units from
the header, ``# units: degC`` or ``value [degC]``, else ``units``, else the domain's), or any
xarray file whose variable (``variable``, else 2m_temperature or an alias, as the datasets pick
it) is either gridded (latitude × longitude; NaN = unobserved, +/-inf an error) or scattered (one
dimension along which latitude, longitude and the value run). Longitudes may be
on -180..180 or 0..360. ``read_item`` gives one whole field on the domain's grid (for encoding).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from inrkit.errors import DataError
from inrkit.observations import Observations

from .dims import index_by_coords
from .domain import NETCDF_SUFFIXES, looks_like_zarr
from .to_domain import domain_regridder
from .units import resolve_units, unit_conversion
from .xarray_source import ALIASES, DEFAULT_VARIABLE, LAT_NAMES, LON_NAMES, find_dim, open_xarray, pick_variable

TABLE_SUFFIXES = (".csv", ".tsv", ".txt")
COLUMNS = {"lat": ("lat", "latitude"), "lon": ("lon", "longitude", "long", "lng"),
           "value": ("value", *ALIASES, "temp")}


def xyz(lat_deg: np.ndarray, lon_deg: np.ndarray) -> torch.Tensor:
    phi, lam = np.deg2rad(np.asarray(lat_deg, np.float64)), np.deg2rad(np.asarray(lon_deg, np.float64))
    return torch.from_numpy(np.stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)], -1)).float()


def _check_coords(path: Path, lat: np.ndarray, lon: np.ndarray) -> None:
    for name, v, lo, hi in (("latitude", lat, -90.0, 90.0), ("longitude", lon, -180.0, 360.0)):
        if not np.all(np.isfinite(v)):
            raise DataError(f"{path}: non-finite {name}s")
        bad = np.flatnonzero((v < lo - 1e-6) | (v > hi + 1e-6))
        if bad.size:
            raise DataError(f"{path}: {name} {v[bad[0]]:g} (point {bad[0] + 1}) is outside [{lo:g}, {hi:g}]")


def _units(path: Path, file_units: str | None, given: str | None) -> str | None:
    return resolve_units(file_units, given, str(path), "--units")


def _table(path: Path):
    from ..table import read_table

    cols, units = read_table(path, COLUMNS)
    return cols["lat"], cols["lon"], cols["value"], units.get("value") or None, "table"


def _variable(ds, path: Path, variable: str | None):
    """The variable as the datasets pick it (:func:`pick_variable`): ``variable`` (--variable), else
    2m_temperature under any of its names; a file without it is an error listing what it holds (its
    only variable is not taken on trust: precipitation read as temperature would be nonsense)."""
    try:
        return pick_variable(ds, variable or DEFAULT_VARIABLE, path)
    except DataError as err:
        raise DataError(f"{err}; choose one with --variable NAME") from None


def _check_infinite(where: str, values: np.ndarray) -> None:
    """+/-inf is no measurement and no gap (NaN marks those): an error, never a dropped point."""
    n = int(np.isinf(values).sum())
    if n:
        raise DataError(f"{where}: {n} infinite value{'s' * (n != 1)} (+/-inf); mark unobserved points with NaN"
                        " or drop them")


def _xarray(path: Path, variable: str | None):
    ds = open_xarray(path)
    da = index_by_coords(_variable(ds, path, variable))  # y/x dims with 1-D latitude/longitude coordinates
    where = f"{path}: variable '{da.name}'"
    da = da.squeeze(drop=True)
    lat_d, lon_d = find_dim(da, LAT_NAMES), find_dim(da, LON_NAMES)
    if lat_d is not None and lon_d is not None:  # gridded, NaN = unobserved
        if da.ndim != 2:
            raise DataError(f"{where} has dims {dict(da.sizes)}; expected one latitude x longitude field")
        da = da.transpose(lat_d, lon_d)
        lat, lon = np.meshgrid(np.asarray(da[lat_d].values, np.float64), np.asarray(da[lon_d].values, np.float64),
                               indexing="ij")
        kind = "gridded"
    elif da.ndim == 1:  # scattered: latitude and longitude along the value's dimension
        dim = da.dims[0]
        found = {}
        for key, names in (("lat", LAT_NAMES), ("lon", LON_NAMES)):
            hit = next((ds[n] for n in list(ds.variables) if str(n).lower() in names and ds[n].dims == (dim,)), None)
            if hit is None:
                raise DataError(f"{where} runs along '{dim}' but no {'/'.join(names)} variable runs along it")
            found[key] = np.asarray(hit.values, np.float64)
        lat, lon, kind = found["lat"], found["lon"], "scattered"
    else:
        raise DataError(f"{where} has dims {dict(da.sizes)}; expected latitude x longitude, or one station dimension")
    values = np.asarray(da.values, np.float64)
    _check_infinite(where, values)
    keep = ~np.isnan(values)  # NaN marks what is not observed
    return lat[keep], lon[keep], values[keep], da.attrs.get("units"), kind


def read_observations(domain, path, units: str | None = None, variable: str | None = None) -> Observations:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if suffix in TABLE_SUFFIXES:
        if variable is not None:
            raise DataError(f"{path}: --variable is for NetCDF/zarr files; a table's value column is 'value'")
        lat, lon, values, file_units, kind = _table(path)
    elif suffix in NETCDF_SUFFIXES or looks_like_zarr(path):
        lat, lon, values, file_units, kind = _xarray(path, variable)
    else:
        raise DataError(f"{path}: unknown observation format; expected {', '.join(TABLE_SUFFIXES)} (lat, lon, value),"
                        " NetCDF or zarr")
    if values.size == 0:
        raise DataError(f"{path}: no observed point (every value is missing)")
    _check_coords(path, lat, lon)
    u = _units(path, file_units, units)
    domain_units = domain.config.variable_units
    physical = unit_conversion(u, domain_units, str(path))(values)
    return Observations(
        xyz(lat.ravel(), lon.ravel()), torch.from_numpy(domain.to_model(physical.ravel()))[:, None], source=str(path),
        units=domain_units, value_scale=domain.span / 2,
        meta={"format": kind, "file_units": u or f"{domain_units} (assumed)",
              "latitude_range": [float(lat.min()), float(lat.max())]},
    )


def read_item(domain, path, units: str | None = None, variable: str | None = None) -> torch.Tensor:
    """One complete gridded field → (1, n_lat, n_lon) model space on the domain's grid (bilinear)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.suffix.lower() in TABLE_SUFFIXES:
        raise DataError(f"{path}: a table of points is not a whole field; complete it with `inrkit complete`")
    ds = open_xarray(path)
    da = index_by_coords(_variable(ds, path, variable)).squeeze(drop=True)
    where = f"{path}: variable '{da.name}'"
    lat_d, lon_d = find_dim(da, LAT_NAMES), find_dim(da, LON_NAMES)
    if lat_d is None or lon_d is None or da.ndim != 2:
        raise DataError(f"{where} has dims {dict(da.sizes)}; expected one latitude x longitude field")
    da = da.transpose(lat_d, lon_d)
    lat, lon = np.asarray(da[lat_d].values, np.float64), np.asarray(da[lon_d].values, np.float64)
    _check_coords(path, lat, lon)
    values = np.asarray(da.values, np.float64)
    _check_infinite(where, values)
    if not np.all(np.isfinite(values)):
        raise DataError(f"{where}: {int((~np.isfinite(values)).sum())} missing values; a gapped field is completed"
                        " with `inrkit complete`")
    convert = unit_conversion(_units(path, da.attrs.get("units"), units), domain.config.variable_units, str(path))
    field = convert(domain_regridder(lat, lon, domain, where)(values))
    return torch.from_numpy(np.asarray(domain.to_model(field), np.float32))[None]


def render_spread(domain, std: torch.Tensor, out_dir: Path, stem: str, meta: dict | None = None) -> list[Path]:
    """Maps + CF NetCDF of the per-location standard deviation, in the domain's units (not offset)."""
    # render() maps model space x to t_min + (x + 1)/2·span; this x makes that the std itself
    as_model = domain.to_model(std.float() * domain.span / 2)
    return domain.render(as_model, out_dir, stem=stem, meta={**(meta or {}), "quantity": "standard deviation across samples"})


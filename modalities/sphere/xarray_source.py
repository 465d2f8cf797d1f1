"""Opening a user's xarray sources (NetCDF, zarr, GRIB, a folder of them) and finding the variable in them.

:class:`XarraySource` is one opened file or store: its variable as (time, lat, lon), still lazy,
with the coordinates and units; the ``era5_xarray`` and ``ncep_winds`` datasets and the
observation readers read through it.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from inrkit.errors import DataError

from .domain import XARRAY_SUFFIXES, looks_like_zarr

DEFAULT_VARIABLE = "2m_temperature"
# names the same quantity goes by in CDS downloads, CMIP and GASP
ALIASES = ("2m_temperature", "t2m", "2t", "temperature", "tas")
LAT_NAMES = ("latitude", "lat")
LON_NAMES = ("longitude", "lon")
TIME_NAMES = ("time", "valid_time")


def source_paths(root: Path) -> list[Path]:
    if root.is_file() or looks_like_zarr(root):
        return [root]
    files = sorted(
        p for p in root.rglob("*")
        if p.suffix.lower() in XARRAY_SUFFIXES and p.is_file() and not any(s.startswith(".") for s in p.relative_to(root).parts)
    )
    if not files:
        raise DataError(f"{root}: no NetCDF (.nc) or GRIB (.grib) files or zarr store found in this folder")
    return files


def open_xarray(path: Path):
    """Any NetCDF (4/HDF5 through h5netcdf, classic through scipy), GRIB (cfgrib) or zarr (v2/v3) store."""
    import xarray as xr

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zarr's consolidated-metadata and v3 notices
            if path.is_dir():
                return xr.open_dataset(path, engine="zarr", consolidated=None, chunks=None)
            with open(path, "rb") as fh:
                magic = fh.read(8)
            if magic.startswith(b"CDF"):
                return xr.open_dataset(path, engine="scipy", chunks=None)
            if magic.startswith(b"\x89HDF"):
                return xr.open_dataset(path, engine="h5netcdf", chunks=None)
            if magic.startswith(b"GRIB"):
                return _open_grib(path)
    except DataError:
        raise
    except Exception as err:
        msg = str(err).strip().splitlines()
        raise DataError(f"{path}: cannot be opened with xarray ({type(err).__name__}: {msg[0] if msg else ''})") from None
    raise DataError(f"{path}: not a NetCDF or GRIB file (unrecognised header) nor a zarr store")


def _open_grib(path: Path):
    """GRIB (ERA5 from the Copernicus store) through cfgrib, an optional extra."""
    import xarray as xr

    try:
        import cfgrib  # noqa: F401
    except ImportError:
        raise DataError(f"{path}: a GRIB file; reading GRIB needs the 'grib' extra: pip install 'inrkit[grib]'") from None
    # indexpath "": cfgrib would otherwise write a .idx file beside the user's data; errors "raise":
    # a truncated or damaged message is an error (cfgrib would log a traceback and skip it, and
    # the run would train on part of the file without a word)
    try:
        return xr.open_dataset(path, engine="cfgrib", chunks=None, backend_kwargs={"indexpath": "", "errors": "raise"})
    except Exception as err:
        msg = str(err).strip().splitlines()
        raise DataError(f"{path}: a damaged or truncated GRIB file ({type(err).__name__}: {msg[0] if msg else ''})") from None


def pick_variable(ds, wanted: str, path: Path):
    names = list(ds.data_vars)
    if wanted in ds.data_vars:
        return ds[wanted]
    if wanted == DEFAULT_VARIABLE:
        lower = {n.lower(): n for n in names}
        for alias in ALIASES:
            if alias in lower:
                return ds[lower[alias]]
    hint = f" (also tried {', '.join(ALIASES[1:])})" if wanted == DEFAULT_VARIABLE else ""
    raise DataError(f"{path}: variable '{wanted}' not found{hint}; variables present: {', '.join(names) or '(none)'}")


def yaml_scalar(value) -> str:
    """A coordinate label as YAML a user can paste into --set (1000, 850.5, "2020-01-01"), never np.int64(...)."""
    if isinstance(value, np.datetime64):  # .item() of datetime64[ns] is an int of nanoseconds
        return f'"{np.datetime_as_string(value, unit="auto")}"'
    v = value.item() if hasattr(value, "item") else value
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return '"' + str(v).replace('"', '\\"') + '"'
    return repr(v) if isinstance(v, float) else str(v)


def find_dim(da, names: tuple[str, ...]) -> str | None:
    for d in da.dims:
        if str(d).lower() in names:
            return d
    return None


class XarraySource:
    """One opened file/store: its variable as (time, lat, lon) plus the coordinates, still lazy.

    ``cfg`` names what to read: ``variable``, ``select`` (one label per extra dimension) and ``time``
    ([start, stop]), as :class:`~inrkit_modalities.sphere.era5_xarray.ERA5XarrayConfig` holds them.
    """

    def __init__(self, path: Path, cfg):
        self.path = path
        self.ds = ds = open_xarray(path)
        da = pick_variable(ds, cfg.variable, path)
        self.variable = str(da.name)
        where = f"{path}: variable '{self.variable}'"
        lat_d, lon_d, time_d = find_dim(da, LAT_NAMES), find_dim(da, LON_NAMES), find_dim(da, TIME_NAMES)
        if lat_d is None or lon_d is None:
            raise DataError(f"{where} has dims {tuple(map(str, da.dims))}; expected latitude/lat and longitude/lon")
        if cfg.select:
            da = self._select(da, cfg.select, where)
        extra = [d for d in da.dims if d not in (lat_d, lon_d, time_d)]
        big = [d for d in extra if da.sizes[d] != 1]
        if big:
            example = ", ".join(f"{d}: {yaml_scalar(da[d].values[0])}" if d in da.coords else f"{d}: 0" for d in big)
            raise DataError(f"{where} has extra dimension(s) {', '.join(f'{d} ({da.sizes[d]})' for d in big)};"
                            f" choose one value of each with --set 'data.select={{{example}}}'")
        da = da.squeeze(extra, drop=True) if extra else da
        if time_d is None:
            da = da.expand_dims("time")  # one field, no time axis
            time_d = "time"
        if cfg.time is not None:
            da = self._slice_time(da, time_d, cfg.time, where)
        self.da = da.transpose(time_d, lat_d, lon_d)
        if lat_d not in da.coords or lon_d not in da.coords:
            raise DataError(f"{where}: latitude/longitude dimensions carry no coordinate values")
        self.lat = np.asarray(da[lat_d].values, np.float64)
        self.lon = np.asarray(da[lon_d].values, np.float64)
        if np.any(np.abs(self.lat) > 90 + 1e-6):
            raise DataError(f"{where}: latitudes outside [-90, 90] (min {self.lat.min()}, max {self.lat.max()})")
        self.units = da.attrs.get("units")
        self.times = np.asarray(da[time_d].values) if time_d in da.coords else None
        self.n = int(self.da.shape[0])

    @staticmethod
    def _select(da, select: dict[str, Any], where: str):
        """``{level: 850}``: one label per extra dimension (nearest for numeric coordinates)."""
        for dim, value in select.items():
            if dim not in da.dims:
                raise DataError(f"{where}: data.select names '{dim}', which is not one of its dims {tuple(map(str, da.dims))}")
            try:
                if dim in da.coords and np.issubdtype(da[dim].dtype, np.number) and isinstance(value, (int, float)):
                    da = da.sel({dim: value}, method="nearest")
                elif dim in da.coords:
                    da = da.sel({dim: value})
                else:
                    da = da.isel({dim: int(value)})
            except (KeyError, ValueError, IndexError, TypeError):
                raise DataError(f"{where}: no {dim} = {value!r} (it has {da.sizes[dim]} values)") from None
        return da

    @staticmethod
    def _slice_time(da, time_d, bounds, where):
        start, stop = bounds
        try:
            if all(b is None or isinstance(b, int) for b in bounds):
                return da.isel({time_d: slice(start, stop)})
            if time_d not in da.coords:
                raise DataError(f"{where}: a time slice by label needs a time coordinate")
            return da.sel({time_d: slice(start, stop)})
        except DataError:
            raise
        except Exception as err:
            raise DataError(f"{where}: cannot select time {bounds} ({type(err).__name__}: {err})") from None

    def read(self, start: int, stop: int) -> np.ndarray:
        try:
            return np.asarray(self.da[start:stop].values, dtype=np.float64)
        except Exception as err:
            raise DataError(f"{self.path}: cannot read variable '{self.variable}' ({type(err).__name__}: {err})") from None

"""Opening a user's xarray sources (NetCDF, zarr, GRIB, a folder of them) and finding the variable in them.

:class:`XarraySource` is one opened file or store: its variable as (time, lat, lon), still lazy,
with the coordinates and units; the ``era5_xarray`` and ``ncep_winds`` datasets and the
observation readers read through it. Dimensions are found by name or CF attributes
(:mod:`.dims`), an ``expver`` dimension (ERA5 beside ERA5T) is merged (:mod:`.expver`), a time
coordinate xarray cannot decode is read by position.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from inrkit.errors import DataError

from .dims import LAT_NAMES, LON_NAMES, TIME_NAMES, find_dim, index_by_coords, scalar_time
from .domain import XARRAY_SUFFIXES, looks_like_zarr
from .expver import MERGED_DIMS, merge_expver
from .folders import folder_contents

DEFAULT_VARIABLE = "2m_temperature"
# names the same quantity goes by in CDS downloads, CMIP and GASP
ALIASES = ("2m_temperature", "t2m", "2t", "temperature", "tas")
__all__ = ["ALIASES", "DEFAULT_VARIABLE", "LAT_NAMES", "LON_NAMES", "TIME_NAMES", "XarraySource", "find_dim",
           "open_xarray", "pick_variable", "source_paths", "yaml_scalar"]


def source_paths(root: Path) -> list[Path]:
    """The file or store itself, or the NetCDF/GRIB files and zarr stores in a folder (:mod:`.folders`), sorted by path."""
    if root.is_file() or looks_like_zarr(root):
        return [root]
    files, stores = folder_contents(root)
    found = sorted([p for p in files if p.suffix.lower() in XARRAY_SUFFIXES] + stores)
    if not found:
        raise DataError(f"{root}: no NetCDF (.nc) or GRIB (.grib) files or zarr store found in this folder")
    return found


def open_xarray(path: Path):
    """Any NetCDF (4/HDF5 through h5netcdf, classic through scipy), GRIB (cfgrib) or zarr (v2/v3) store."""
    import xarray as xr

    def engine_of():
        if path.is_dir():
            return {"engine": "zarr", "consolidated": None}
        with open(path, "rb") as fh:
            magic = fh.read(8)
        if magic.startswith(b"CDF"):
            return {"engine": "scipy"}
        if magic.startswith(b"\x89HDF"):
            return {"engine": "h5netcdf"}
        return None

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zarr's consolidated-metadata and v3 notices
            kw = engine_of()
            if kw is None:
                with open(path, "rb") as fh:
                    if fh.read(4) == b"GRIB":
                        return _open_grib(path)
                raise DataError(f"{path}: not a NetCDF or GRIB file (unrecognised header) nor a zarr store")
            try:
                return xr.open_dataset(path, chunks=None, **kw)
            except ValueError as err:
                if "decode time" not in str(err):
                    raise
                # e.g. 'months since' on the standard calendar: the values are fine, the dates are not;
                # XarraySource reads such a file by position (and says so where labels are asked for)
                return xr.open_dataset(path, chunks=None, decode_times=False, **kw)
    except DataError:
        raise
    except Exception as err:
        msg = str(err).strip().splitlines()
        raise DataError(f"{path}: cannot be opened with xarray ({type(err).__name__}: {msg[0] if msg else ''})") from None


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
    if isinstance(value, np.timedelta64):  # a GRIB forecast step: "6h", which xarray selects by
        seconds = value / np.timedelta64(1, "s")
        return f'"{seconds / 3600:g}h"' if seconds % 3600 == 0 else f'"{seconds:g}s"'
    v = value.item() if hasattr(value, "item") else value
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return '"' + str(v).replace('"', '\\"') + '"'
    return repr(v) if isinstance(v, float) else str(v)


class XarraySource:
    """One opened file/store: its variable as (time, lat, lon) plus the coordinates, still lazy.

    ``cfg`` names what to read: ``variable``, ``select`` (one label per extra dimension) and ``time``
    ([start, stop]), as :class:`~inrkit_modalities.sphere.era5_xarray.ERA5XarrayConfig` holds them.
    """

    def __init__(self, path: Path, cfg):
        self.path = path
        self.ds = ds = open_xarray(path)
        da = index_by_coords(pick_variable(ds, cfg.variable, path))
        self.variable = str(da.name)
        self.where = where = f"{path}: variable '{self.variable}'"
        lat_d, lon_d, time_d = find_dim(da, LAT_NAMES), find_dim(da, LON_NAMES), find_dim(da, TIME_NAMES)
        if lat_d is None or lon_d is None:
            raise DataError(f"{where} has dims {tuple(map(str, da.dims))}; expected latitude/lat and longitude/lon"
                            " (or coordinates with units degrees_north/degrees_east)")
        if cfg.select:
            da = self._select(da, cfg.select, where)
        extra = [d for d in da.dims if d not in (lat_d, lon_d, time_d)]
        # ERA5 + ERA5T (expver 1 and 5): one series, merged step by step (see expver.py)
        self.merged = [d for d in extra if str(d).lower() in MERGED_DIMS and da.sizes[d] > 1][:1]
        big = [d for d in extra if da.sizes[d] != 1 and d not in self.merged]
        if big:
            example = ", ".join(f"{d}: {yaml_scalar(da[d].values[0])}" if d in da.coords else f"{d}: 0" for d in big)
            raise DataError(f"{where} has extra dimension(s) {', '.join(f'{d} ({da.sizes[d]})' for d in big)};"
                            f" choose one value of each with --set 'data.select={{{example}}}'")
        squeeze = [d for d in extra if d not in self.merged]
        da = da.squeeze(squeeze, drop=True) if squeeze else da
        if time_d is None:
            time_d = scalar_time(da) or "time"  # one field: its time a 0-d coordinate, or none
            da = da.expand_dims(time_d)
        # a time coordinate xarray could not decode (e.g. 'months since' on the standard calendar)
        undecoded = time_d in da.coords and "since" in str(da[time_d].attrs.get("units", ""))
        self.time_note = (f"its time units '{da[time_d].attrs['units']}' cannot be decoded"
                          f" (calendar '{da[time_d].attrs.get('calendar', 'standard')}')") if undecoded else None
        if cfg.time is not None:
            da = self._slice_time(da, time_d, cfg.time, where, self.time_note)
        self.da = da.transpose(time_d, *self.merged, lat_d, lon_d)
        if lat_d not in da.coords or lon_d not in da.coords:
            raise DataError(f"{where}: latitude/longitude dimensions carry no coordinate values")
        self.lat = np.asarray(da[lat_d].values, np.float64)
        self.lon = np.asarray(da[lon_d].values, np.float64)
        for name, v in (("latitude", self.lat), ("longitude", self.lon)):
            if not np.all(np.isfinite(v)):
                raise DataError(f"{where}: {int((~np.isfinite(v)).sum())} of its {len(v)} {name}s are missing (NaN)")
        if np.any(np.abs(self.lat) > 90 + 1e-6):
            raise DataError(f"{where}: latitudes outside [-90, 90] (min {self.lat.min()}, max {self.lat.max()})")
        self.units = da.attrs.get("units")
        self.times = np.asarray(da[time_d].values) if time_d in da.coords and not undecoded else None
        self.merged_labels = []
        if self.merged:
            m = self.merged[0]
            self.merged_labels = [yaml_scalar(v) for v in da[m].values] if m in da.coords else list(map(str, range(da.sizes[m])))
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
    def _slice_time(da, time_d, bounds, where, time_note=None):
        start, stop = bounds
        try:
            if all(b is None or isinstance(b, int) for b in bounds):
                return da.isel({time_d: slice(start, stop)})
            if time_d not in da.coords or time_note:
                raise DataError(f"{where}: a time slice by label needs a time coordinate"
                                + (f", and {time_note}" if time_note else "")
                                + "; select by position instead, e.g. --set 'data.time=[0, 12]'")
            return da.sel({time_d: slice(start, stop)})
        except DataError:
            raise
        except Exception as err:
            raise DataError(f"{where}: cannot select time {bounds} ({type(err).__name__}: {err})") from None

    def read(self, start: int, stop: int) -> np.ndarray:
        """Time steps ``start:stop`` as float64 (t, lat, lon), as the file stores the grid."""
        try:
            block = np.asarray(self.da[start:stop].values, dtype=np.float64)
        except Exception as err:
            raise DataError(f"{self.path}: cannot read variable '{self.variable}' ({type(err).__name__}: {err})") from None
        return merge_expver(block, self.merged_labels, self.where, str(self.merged[0])) if self.merged else block

"""Sphere datasets: ERA5 through xarray (NetCDF, zarr, a folder of .nc), GASP's .npz folder, and
the built-in ``synthetic`` fields.

Each item is one time step (one file for .npz) as a float32 (1, n_lat, n_lon) model-space
tensor on the domain's grid. Files are read in full at open time — that is when NaN or inf values, missing
variables or bad grids are reported, naming the file — and the regridded split is kept in memory.
"""
from __future__ import annotations

from typing import Any, Literal

import datetime
import math
import warnings
from pathlib import Path

import numpy as np
import pydantic
import torch

from inrkit.errors import DataError
from inrkit.registry import datasets

from ..common import SplitFields, TensorDataset, select_split
from .domain import XARRAY_SUFFIXES, looks_like_zarr
from .regrid import make_regridder

DEFAULT_VARIABLE = "2m_temperature"
# names the same quantity goes by in CDS downloads, CMIP and GASP
ALIASES = ("2m_temperature", "t2m", "2t", "temperature", "tas")
LAT_NAMES = ("latitude", "lat")
LON_NAMES = ("longitude", "lon")
TIME_NAMES = ("time", "valid_time")
CHUNK_STEPS = 256  # time steps read at once: bounds memory on long hourly files
REGRID = pydantic.Field("bilinear", description="bilinear, or conservative (area-weighted; use it to coarsen)")

_KELVIN = {"k", "kelvin", "kelvins", "degk", "degreesk", "degreek"}
_CELSIUS = {"c", "degc", "celsius", "degreesc", "degreec", "degreecelsius", "degreescelsius", "degcelsius"}


def _unit_kind(units: str) -> str:
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
    src, dst = _unit_kind(file_units), _unit_kind(domain_units)
    if src == dst:
        return 0.0
    if (src, dst) == ("degC", "K"):
        return 273.15
    if (src, dst) == ("K", "degC"):
        return -273.15
    raise DataError(f"{where}: units '{file_units}' cannot be converted to the domain's '{domain_units}'")


def _meta(domain, cfg, source: str, **extra) -> dict:
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


def _conversion(domain, what: str, source_grid: tuple[int, int] | None, units: str | None) -> str:
    """What the fields become, said once at the start of training: grid, units, scaling."""
    c = domain.config
    n_lat, n_lon = domain.grid_shape
    grid = "" if source_grid is None else f" on a {source_grid[0]}x{source_grid[1]} latitude x longitude grid"
    same = source_grid is not None and tuple(source_grid) == (n_lat, n_lon)
    how = "are kept on" if same else "are regridded (bilinear, periodic in longitude) to"
    unit_text = f", converted from {units} to {c.variable_units}" if units and _unit_kind(units) != _unit_kind(c.variable_units) else ""
    return (f"{what}{grid} {how} the {n_lat}x{n_lon} training grid ({c.layout}){unit_text}, scaled to"
            f" x = 2 * (T - {c.t_min:g}) / ({c.t_max:g} - {c.t_min:g}) - 1; change the grid with"
            f" --set model.domain.n_lat=N --set model.domain.n_lon=M")


# ---------------------------------------------------------------------------------------------
# xarray: NetCDF, zarr, folders of NetCDF
# ---------------------------------------------------------------------------------------------
class ERA5XarrayConfig(SplitFields):
    path: str
    variable: str = DEFAULT_VARIABLE
    regrid: Literal["bilinear", "conservative"] = REGRID
    time: list[str | int | None] | None = pydantic.Field(
        None, description="[start, stop]: dates/labels select by label (inclusive), ints by position"
    )
    select: dict[str, Any] | None = pydantic.Field(
        None, description="one value per extra dimension, e.g. {level: 850} (nearest numeric label)"
    )

    @pydantic.field_validator("time", mode="before")
    @classmethod
    def _time(cls, v):
        if v is None:
            return v
        if not isinstance(v, (list, tuple)) or len(v) != 2:
            raise ValueError("must be [start, stop]")
        return [x.isoformat() if isinstance(x, (datetime.date, datetime.datetime)) else x for x in v]


def _sources(root: Path) -> list[Path]:
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
    # indexpath "": cfgrib would otherwise write a .idx file beside the user's data
    return xr.open_dataset(path, engine="cfgrib", chunks=None, backend_kwargs={"indexpath": ""})


def _pick_variable(ds, wanted: str, path: Path):
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


def _yaml_scalar(value) -> str:
    """A coordinate label as YAML a user can paste into --set (1000, 850.5, "2020-01-01"), never np.int64(...)."""
    if isinstance(value, np.datetime64):  # .item() of datetime64[ns] is an int of nanoseconds
        return f'"{np.datetime_as_string(value, unit="auto")}"'
    v = value.item() if hasattr(value, "item") else value
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return '"' + str(v).replace('"', '\\"') + '"'
    return repr(v) if isinstance(v, float) else str(v)


def _find_dim(da, names: tuple[str, ...]) -> str | None:
    for d in da.dims:
        if str(d).lower() in names:
            return d
    return None


class _Source:
    """One opened file/store: its variable as (time, lat, lon) plus the coordinates, still lazy."""

    def __init__(self, path: Path, cfg: ERA5XarrayConfig):
        self.path = path
        self.ds = ds = open_xarray(path)
        da = _pick_variable(ds, cfg.variable, path)
        self.variable = str(da.name)
        where = f"{path}: variable '{self.variable}'"
        lat_d, lon_d, time_d = _find_dim(da, LAT_NAMES), _find_dim(da, LON_NAMES), _find_dim(da, TIME_NAMES)
        if lat_d is None or lon_d is None:
            raise DataError(f"{where} has dims {tuple(map(str, da.dims))}; expected latitude/lat and longitude/lon")
        if cfg.select:
            da = self._select(da, cfg.select, where)
        extra = [d for d in da.dims if d not in (lat_d, lon_d, time_d)]
        big = [f"{d} ({da.sizes[d]})" for d in extra if da.sizes[d] != 1]
        if big:
            example = f"{extra[0]}: {_yaml_scalar(da[extra[0]].values[0])}" if extra[0] in da.coords else f"{extra[0]}: 0"
            raise DataError(f"{where} has extra dimension(s) {', '.join(big)}; choose one value of each with"
                            f" --set 'data.select={{{example}}}'")
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


def _regridder(lat, lon, domain, where: str, method: str = "bilinear"):
    try:
        return make_regridder(method, lat, lon, domain.latitudes(), domain.longitudes())
    except ValueError as err:
        raise DataError(f"{where}: bad latitude/longitude grid ({err})") from None


@datasets.register("era5_xarray", config=ERA5XarrayConfig, description="ERA5 via xarray: NetCDF, zarr store or a folder of .nc; regridded to the domain")
class ERA5Xarray(TensorDataset):
    def __init__(self, config: ERA5XarrayConfig, domain):
        self.config = config
        root = Path(config.path).expanduser()
        if not root.exists():
            raise DataError(f"data path does not exist: {root}")
        sources = [_Source(p, config) for p in _sources(root)]
        if all(s.times is not None and len(s.times) for s in sources):
            sources.sort(key=lambda s: s.times[0])  # file names need not be chronological
        total = sum(s.n for s in sources)
        if total == 0:
            raise DataError(f"{root}: no time steps" + (f" in time range {config.time}" if config.time else ""))
        keep = select_split(total, config)
        items = np.empty((len(keep), 1, *domain.grid_shape), np.float32)
        offset, filled, times, origin = 0, 0, [], []
        try:
            for src in sources:
                where = f"{src.path}: variable '{src.variable}'"
                shift = unit_offset(src.units, domain.config.variable_units, where)
                regrid = _regridder(src.lat, src.lon, domain, where, config.regrid)
                mine = keep[(keep >= offset) & (keep < offset + src.n)] - offset
                nans = 0
                for t0 in range(0, src.n, CHUNK_STEPS):
                    block = src.read(t0, min(src.n, t0 + CHUNK_STEPS))
                    nans += int((~np.isfinite(block)).sum())
                    sel = mine[(mine >= t0) & (mine < t0 + len(block))] - t0
                    if nans or not len(sel):
                        continue
                    items[filled : filled + len(sel), 0] = domain.to_model(regrid(block[sel]) + shift)
                    filled += len(sel)
                if nans:
                    raise DataError(f"{where} holds {nans} non-finite value(s) (NaN: missing data, or inf); fill or drop them first")
                if src.times is not None:
                    times.extend(src.times[mine])
                origin.extend((src.path, int(t), shift) for t in mine)
                offset += src.n
        finally:
            for src in sources:
                src.ds.close()  # everything needed is in memory now
        self.times = np.asarray(times) if len(times) == len(keep) else None
        # the user's own grid, when every file shares one: reconstructions are also rendered there
        same = all(np.array_equal(s.lat, sources[0].lat) and np.array_equal(s.lon, sources[0].lon) for s in sources)
        self._source_grid = (sources[0].lat, sources[0].lon) if same else None
        self._origin = origin
        super().__init__(torch.from_numpy(items), _meta(
            domain, config, str(root),
            files=[str(s.path) for s in sources][:20],
            n_files=len(sources),
            variable=sources[0].variable,
            source_grid=[len(sources[0].lat), len(sources[0].lon)],
            n_time_total=total,
            n_items=len(keep),
            time_range=[str(times[0]), str(times[-1])] if times else None,
            conversion=_conversion(domain, f"{len(keep)} time steps of '{sources[0].variable}'",
                                   (len(sources[0].lat), len(sources[0].lon)), sources[0].units),
        ))


    def item_labels(self, indices) -> list[str]:
        """Each item's date (ISO), or its position where the data has no time coordinate."""
        if self.times is None:
            return [f"time step {i}" for i in indices]
        return [str(np.datetime_as_string(self.times[i], unit="auto")) if np.issubdtype(self.times.dtype, np.datetime64)
                else str(self.times[i]) for i in indices]

    def item_coords(self, indices) -> dict | None:
        """The items' own ``time`` values, for the sample axis of NetCDF outputs."""
        return None if self.times is None else {"time": self.times[list(indices)]}

    def source_grid(self) -> dict | None:
        """The files' own latitude/longitude grid (as stored), or None when the files differ."""
        return None if self._source_grid is None else {"latitude": self._source_grid[0], "longitude": self._source_grid[1]}

    def source_targets(self, indices) -> np.ndarray:
        """Items as the files hold them, on :meth:`source_grid`, in the domain's units: (k, n_lat, n_lon)."""
        out = []
        for i in indices:
            path, t, shift = self._origin[i]
            src = _Source(path, self.config)
            try:
                out.append(src.read(t, t + 1)[0] + shift)
            finally:
                src.ds.close()
        return np.stack(out)


# ---------------------------------------------------------------------------------------------
# GASP: a folder of .npz with latitude, longitude, temperature
# ---------------------------------------------------------------------------------------------
class ERA5NpzConfig(SplitFields):
    """A folder of GASP-style ``.npz`` files, one time step each.

    ``.npz`` files carry no units attribute, so ``units`` declares what the temperature arrays are
    in: ``K`` (the default, as GASP writes them) or ``degC`` (also ``°C``, ``C``, ``celsius``) for
    variants in Celsius. Values are converted to the domain's ``variable_units`` with
    :func:`unit_offset` before scaling to model space; other units are an error.
    """

    path: str
    units: str = pydantic.Field(
        "K", min_length=1, description="units of the files' temperature arrays (.npz holds none): K or degC"
    )
    regrid: Literal["bilinear", "conservative"] = REGRID


_NPZ_KEYS = {"lat": LAT_NAMES, "lon": LON_NAMES, "field": ("temperature",) + ALIASES}


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k.lower(): np.asarray(z[k]) for k in z.files}
    except Exception as err:
        raise DataError(f"{path}: unreadable .npz ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None
    found = {}
    for role, names in _NPZ_KEYS.items():
        key = next((n for n in names if n in arrays), None)
        if key is None:
            raise DataError(f"{path}: no '{names[0]}' array; arrays present: {', '.join(sorted(arrays)) or '(none)'}")
        found[role] = arrays[key]
    lat, lon = found["lat"].astype(np.float64).ravel(), found["lon"].astype(np.float64).ravel()
    field = np.squeeze(found["field"]).astype(np.float64)
    if field.shape == (len(lon), len(lat)) and len(lat) != len(lon):
        field = field.T
    if field.shape != (len(lat), len(lon)):
        raise DataError(f"{path}: temperature has shape {found['field'].shape}, expected ({len(lat)}, {len(lon)}) from latitude × longitude")
    return lat, lon, field


@datasets.register("era5_npz", config=ERA5NpzConfig, description="GASP layout: a folder of .npz (latitude, longitude, temperature; K unless data.units says otherwise)")
class ERA5Npz(TensorDataset):
    def __init__(self, config: ERA5NpzConfig, domain):
        self.config = config
        root = Path(config.path).expanduser()
        if not root.exists():
            raise DataError(f"data path does not exist: {root}")
        if not root.is_dir():
            raise DataError(f"{root}: expected a folder of .npz files")
        files = sorted(p for p in root.rglob("*.npz") if p.is_file() and not any(s.startswith(".") for s in p.relative_to(root).parts))
        if not files:
            raise DataError(f"{root}: no .npz files found in this folder")
        shift = unit_offset(config.units, domain.config.variable_units, f"{root} (data.units)")
        keep = select_split(len(files), config)
        items = np.empty((len(keep), 1, *domain.grid_shape), np.float32)
        regridders: dict = {}
        for k, i in enumerate(keep):
            lat, lon, field = _read_npz(files[i])
            nans = int((~np.isfinite(field)).sum())
            if nans:
                raise DataError(f"{files[i]}: variable 'temperature' holds {nans} non-finite value(s) (NaN or inf)")
            key = lat.tobytes() + b"|" + lon.tobytes()
            if key not in regridders:
                regridders[key] = _regridder(lat, lon, domain, str(files[i]), config.regrid)
            items[k, 0] = domain.to_model(regridders[key](field) + shift)
        self.files = [files[i] for i in keep]
        super().__init__(torch.from_numpy(items), _meta(
            domain, config, str(root), n_files=len(files), n_items=len(keep), file_units=config.units,
            conversion=_conversion(domain, f"{len(keep)} .npz fields", tuple(next(iter(regridders.values())).src_shape)
                                   if regridders else None, config.units),
        ))


    def item_labels(self, indices) -> list[str]:
        return [self.files[i].name for i in indices]


# ---------------------------------------------------------------------------------------------
# built-in: smooth random fields from spherical harmonics
# ---------------------------------------------------------------------------------------------
class SyntheticConfig(SplitFields):
    n_items: int = pydantic.Field(64, ge=1)
    lmax: int = pydantic.Field(8, ge=1, le=40)
    anomaly_k: float = pydantic.Field(4.0, ge=0, description="std of the anomaly field in kelvin")


def real_spherical_harmonics(lmax: int, lat_deg: np.ndarray, lon_deg: np.ndarray) -> np.ndarray:
    """Orthonormal real harmonics Y_lm, 1 <= l <= lmax, on a lat/lon grid → (n_basis, n_lat, n_lon).

    Built from scipy's associated Legendre functions (present in every scipy release) rather
    than sph_harm/sph_harm_y, whose name and argument order changed in scipy 1.15.
    """
    from scipy.special import lpmv

    mu = np.sin(np.deg2rad(np.asarray(lat_deg, np.float64)))[:, None]
    lam = np.deg2rad(np.asarray(lon_deg, np.float64))[None, :]
    basis = []
    for l in range(1, lmax + 1):
        for m in range(0, l + 1):
            norm = math.sqrt((2 * l + 1) / (4 * math.pi) * math.factorial(l - m) / math.factorial(l + m))
            p = lpmv(m, l, mu) * norm
            if m == 0:
                basis.append(np.broadcast_to(p, (mu.shape[0], lam.shape[1])))
            else:
                basis.append(math.sqrt(2) * p * np.cos(m * lam))
                basis.append(math.sqrt(2) * p * np.sin(m * lam))
    return np.stack(basis)


def synthetic_fields(indices, lat_deg: np.ndarray, lon_deg: np.ndarray, lmax: int = 8, seed: int = 0,
                     anomaly_k: float = 4.0) -> np.ndarray:
    """(len(indices), n_lat, n_lon) 2 m-temperature-like fields in kelvin, deterministic by seed.

    A zonal climate — about 300 K at the (seasonally shifted) thermal equator, about 240 K at
    the poles — plus a smooth anomaly with a red spectrum (amplitude ∝ 1/(l+1)) scaled to
    ``anomaly_k`` kelvin rms. Item k depends only on (seed, k): a larger set extends a smaller one
    and a split generates only its own items.
    """
    basis = real_spherical_harmonics(lmax, lat_deg, lon_deg)
    degrees = np.array([l for l in range(1, lmax + 1) for _ in range(2 * l + 1)], np.float64)
    amp = 1.0 / (degrees + 1.0)
    lat = np.deg2rad(np.asarray(lat_deg, np.float64))[:, None]
    out = np.empty((len(indices), len(lat_deg), len(lon_deg)), np.float64)
    for i, k in enumerate(indices):
        rng = np.random.default_rng([seed, int(k)])
        shift = np.deg2rad(rng.uniform(-10.0, 10.0))  # seasonal displacement of the thermal equator
        climate = 240.0 + 60.0 * np.cos(lat - shift) ** 2
        anomaly = np.tensordot(rng.standard_normal(len(amp)) * amp, basis, axes=1)
        anomaly *= anomaly_k / max(anomaly.std(), 1e-12)
        out[i] = climate + anomaly
    return out


@datasets.register("synthetic", config=SyntheticConfig, description="built-in: smooth global temperature fields from random spherical harmonics")
class Synthetic(TensorDataset):
    def __init__(self, config: SyntheticConfig, domain):
        self.config = config
        keep = select_split(config.n_items, config)
        kelvin = synthetic_fields(keep, domain.latitudes(), domain.longitudes(), config.lmax, config.seed, config.anomaly_k)
        offset = unit_offset("K", domain.config.variable_units, "synthetic")
        items = domain.to_model(kelvin + offset)[:, None].astype(np.float32)
        super().__init__(torch.from_numpy(items), _meta(
            domain, config, "synthetic spherical-harmonic fields",
            n_items=len(keep), lmax=config.lmax, seed=config.seed,
        ))

"""Sphere outputs: an equirectangular PNG map grid with a colour bar, and CF NetCDF / zarr files.

Fields are written in physical units (kelvin for 2 m temperature) on the grid they were decoded
at, with latitude/longitude coordinate variables, so that xarray, ncview or Panoply read them.
"""
from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from inrkit.io import atomic_output, atomic_write_bytes

from ..common import PNG_SOFTWARE, columns
from .units import is_temperature

VARIABLE = "2m_temperature"
OTHER_VARIABLE = "field"  # a domain in units that are no temperature (winds, precipitation): no name is known


def variable_labels(units: str) -> tuple[str, dict[str, str], str]:
    """What outputs call the field: NetCDF variable name, its CF attributes, the map's colour-bar
    label. 2 m temperature for a domain in kelvin or Celsius; for other units (winds in m/s, say)
    a plain ``field`` in those units, never a temperature's names."""
    if is_temperature(units):
        return VARIABLE, {"units": units, "long_name": "2 metre temperature", "standard_name": "air_temperature"}, "2 m temperature"
    return OTHER_VARIABLE, {"units": units, "long_name": f"field in {units}"}, "field"


def to_dataset(fields: np.ndarray, lat: np.ndarray, lon: np.ndarray, units: str, meta: dict | None = None,
               item_coords: dict | None = None):
    """(B, n_lat, n_lon) physical fields → an xarray Dataset with CF attributes; ``item_coords``
    (name → one value per item, e.g. the held-out items' ``time``) become coordinates of ``sample``."""
    import xarray as xr

    da = xr.DataArray(
        fields.astype(np.float32),
        dims=("sample", "latitude", "longitude"),
        coords={
            "sample": np.arange(fields.shape[0], dtype=np.int32),
            "latitude": ("latitude", lat.astype(np.float64), {"units": "degrees_north", "standard_name": "latitude", "long_name": "latitude", "axis": "Y"}),
            "longitude": ("longitude", lon.astype(np.float64), {"units": "degrees_east", "standard_name": "longitude", "long_name": "longitude", "axis": "X"}),
        },
        attrs=variable_labels(units)[1],
    )
    ds = da.to_dataset(name=variable_labels(units)[0])
    ds["sample"].attrs["long_name"] = "generated or reconstructed sample index"
    for name, values in (item_coords or {}).items():
        values = np.asarray(values)[: fields.shape[0]]
        if len(values) == fields.shape[0]:
            ds = ds.assign_coords({name: ("sample", values)})
    for name in ("sample", "latitude", "longitude"):
        ds[name].encoding["_FillValue"] = None  # CF: coordinate variables carry no fill value
    ds.attrs = {"Conventions": "CF-1.8", "source": "inrkit"}
    if meta:
        ds.attrs["inrkit_meta"] = json.dumps(meta, default=str)
    return ds


def write_netcdf(ds, path: Path) -> Path:
    """CF NetCDF-4, built in memory and written atomically by inrkit: HDF5 writing straight to a
    full disk raises a RuntimeError and may crash the process when it closes the file."""
    atomic_write_bytes(Path(path), bytes(ds.to_netcdf(engine="h5netcdf")))
    return Path(path)


def write_zarr_store(ds, path: Path, zarr_format: int | None = None) -> Path:
    with atomic_output(Path(path)) as tmp, warnings.catch_warnings():
        # consolidated metadata is not in the zarr v3 spec yet (zarr warns) but it is what
        # xarray.open_zarr looks for first; without it every reader gets a warning instead
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        ds.to_zarr(tmp, mode="w", zarr_format=zarr_format, consolidated=True)
    return Path(path)


MAP_PX = 720  # the smallest width of a map figure
_LON_TICKS = np.arange(0, 361, 60)
_LAT_TICKS = np.arange(-60, 61, 30)


def preview_resolution(shape) -> tuple[int, int]:
    """Where to decode a field for a map: at least 90 latitude rows (2°), the grid's aspect kept."""
    n_lat, n_lon = int(shape[0]), int(shape[1])
    if n_lat >= 90:
        return n_lat, n_lon
    return 90, max(2, round(n_lon * 90 / n_lat))


def render_maps(fields: np.ndarray, lat: np.ndarray, lon: np.ndarray, path: Path, units: str,
                vmin: float | None = None, vmax: float | None = None, ncol: int | None = None,
                titles: Sequence[str] | None = None, reference: np.ndarray | None = None,
                variable: str | None = None) -> Path:
    """(B, n_lat, n_lon) physical fields → one PNG of equirectangular maps (at least MAP_PX wide):
    latitude/longitude ticks and gridlines, a title per panel, one colour scale for all panels with
    the variable and units on its bar; with ``reference`` (same items, any grid of the same
    aspect), a difference panel (field − reference) beside each map, on its own symmetric scale."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    variable = variable or variable_labels(units)[2]
    b = fields.shape[0]
    per = 1 if reference is None else 2
    ncol = ncol or (columns(b) if per == 1 else min(b, 2))
    nrow = int(np.ceil(b / ncol))
    vmin = float(np.nanmin(fields)) if vmin is None else vmin
    vmax = float(np.nanmax(fields)) if vmax is None else vmax
    # a fixed layout in inches (constrained layout costs seconds on a small CPU): panels with room
    # for their title above, longitude labels below and latitude labels to the left; bars on the right
    cols = ncol * per
    pw = max(3.4, MAP_PX / 100 / cols)
    ph, left, gap, top, below, bars = pw / 2, 0.5, 0.55, 0.3, 0.3, 1.15 * per
    width, height = left + cols * pw + (cols - 1) * gap + 0.2 + bars, nrow * (ph + top + below) + 0.1
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)

    def box(r, c):
        x0 = left + c * (pw + gap)
        y0 = height - (r + 1) * (ph + top + below) + below
        return (x0 / width, y0 / height, pw / width, ph / height)

    image = diff_image = None
    if reference is not None:
        diff = fields - _on_grid(reference, fields.shape[-2:])
        span = float(np.nanmax(np.abs(diff))) or 1.0
    for k in range(b):
        r, q = divmod(k, ncol)
        title = str(titles[k]) if titles is not None and k < len(titles) else f"item {k}"
        image = _map(fig.add_axes(box(r, q * per)), fields[k], lat, lon, "RdYlBu_r", vmin, vmax, title)
        if reference is not None:
            diff_image = _map(fig.add_axes(box(r, q * per + 1)), diff[k], lat, lon, "RdBu_r", -span, span,
                              f"{title}: difference")
    x_bar = (left + cols * pw + (cols - 1) * gap + 0.2) / width
    bar_h = min(0.8, (height - 0.4) / height)
    fig.colorbar(image, cax=fig.add_axes((x_bar, (1 - bar_h) / 2, 0.16 / width, bar_h))).set_label(f"{variable} [{units}]")
    if diff_image is not None:
        fig.colorbar(diff_image, cax=fig.add_axes((x_bar + 1.15 / width, (1 - bar_h) / 2, 0.16 / width, bar_h))).set_label(
            f"reconstruction - target [{units}]")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": PNG_SOFTWARE})
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


def _on_grid(values: np.ndarray, shape) -> np.ndarray:
    """A (B, n_lat, n_lon) field brought to another grid by nearest rows/columns (for differences)."""
    if tuple(values.shape[-2:]) == tuple(shape):
        return values
    rows = np.minimum((np.arange(shape[0]) + 0.5) * values.shape[-2] / shape[0], values.shape[-2] - 1).astype(int)
    cols = np.minimum((np.arange(shape[1]) + 0.5) * values.shape[-1] / shape[1], values.shape[-1] - 1).astype(int)
    return values[..., rows, :][..., cols]


def _map(ax, field, lat, lon, cmap, vmin, vmax, title):
    # pixel edges: half a cell beyond the outermost centres in longitude, ±90° in latitude
    dlon = 360.0 / len(lon)
    extent = (float(lon[0]) - dlon / 2, float(lon[-1]) + dlon / 2, -90.0, 90.0)
    origin = "upper" if len(lat) < 2 or lat[0] > lat[-1] else "lower"
    image = ax.imshow(field, extent=extent, origin=origin, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto",
                      interpolation="nearest")
    ax.set_xticks(_LON_TICKS, [f"{int(t)}°E" if 0 < t < 360 else f"{int(t)}°" for t in _LON_TICKS], fontsize=7)
    ax.set_yticks(_LAT_TICKS, [f"{abs(int(t))}°{'N' if t > 0 else 'S' if t < 0 else ''}" for t in _LAT_TICKS], fontsize=7)
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(-90, 90)
    ax.grid(True, color="k", alpha=0.25, lw=0.5)
    ax.set_title(title, fontsize=8, loc="left")
    return image

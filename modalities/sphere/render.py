"""Sphere outputs: an equirectangular PNG map grid with a colour bar, and CF NetCDF / zarr files.

Fields are written in physical units (kelvin for 2 m temperature) on the grid they were decoded
at, with latitude/longitude coordinate variables, so that xarray, ncview or Panoply read them.
"""
from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np

from inrkit.io import atomic_write_bytes

from ..common import PNG_SOFTWARE, atomic_output

VARIABLE = "2m_temperature"


def to_dataset(fields: np.ndarray, lat: np.ndarray, lon: np.ndarray, units: str, meta: dict | None = None):
    """(B, n_lat, n_lon) physical fields → an xarray Dataset with CF attributes."""
    import xarray as xr

    da = xr.DataArray(
        fields.astype(np.float32),
        dims=("sample", "latitude", "longitude"),
        coords={
            "sample": np.arange(fields.shape[0], dtype=np.int32),
            "latitude": ("latitude", lat.astype(np.float64), {"units": "degrees_north", "standard_name": "latitude", "long_name": "latitude", "axis": "Y"}),
            "longitude": ("longitude", lon.astype(np.float64), {"units": "degrees_east", "standard_name": "longitude", "long_name": "longitude", "axis": "X"}),
        },
        attrs={"units": units, "long_name": "2 metre temperature", "standard_name": "air_temperature"},
    )
    ds = da.to_dataset(name=VARIABLE)
    ds["sample"].attrs["long_name"] = "generated or reconstructed sample index"
    ds.attrs = {"Conventions": "CF-1.8", "source": "inrkit"}
    if meta:
        ds.attrs["inrkit_meta"] = json.dumps(meta, default=str)
    return ds


def write_netcdf(ds, path: Path) -> Path:
    with atomic_output(Path(path)) as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf")
    return Path(path)


def write_zarr_store(ds, path: Path, zarr_format: int | None = None) -> Path:
    with atomic_output(Path(path)) as tmp, warnings.catch_warnings():
        # consolidated metadata is not in the zarr v3 spec yet (zarr warns) but it is what
        # xarray.open_zarr looks for first; without it every reader gets a warning instead
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        ds.to_zarr(tmp, mode="w", zarr_format=zarr_format, consolidated=True)
    return Path(path)


def render_maps(fields: np.ndarray, lat: np.ndarray, lon: np.ndarray, path: Path, units: str,
                vmin: float | None = None, vmax: float | None = None, ncol: int | None = None) -> Path:
    """(B, n_lat, n_lon) physical fields → one PNG of equirectangular maps sharing a colour bar."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    b = fields.shape[0]
    ncol = ncol or int(np.ceil(np.sqrt(b)))
    nrow = int(np.ceil(b / ncol))
    vmin = float(np.nanmin(fields)) if vmin is None else vmin
    vmax = float(np.nanmax(fields)) if vmax is None else vmax
    # pixel edges: half a cell beyond the outermost centres in longitude, ±90° in latitude
    dlon = 360.0 / len(lon)
    extent = (float(lon[0]) - dlon / 2, float(lon[-1]) + dlon / 2, -90.0, 90.0)
    origin = "upper" if len(lat) < 2 or lat[0] > lat[-1] else "lower"

    fig = Figure(figsize=(2.6 * ncol + 0.9, 1.45 * nrow + 0.3), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrow, ncol, squeeze=False)
    image = None
    for k, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if k >= b:
            ax.set_axis_off()
            continue
        image = ax.imshow(fields[k], extent=extent, origin=origin, cmap="RdYlBu_r", vmin=vmin, vmax=vmax,
                          aspect="auto", interpolation="nearest")
    fig.subplots_adjust(left=0.02, right=0.86, top=0.97, bottom=0.03, wspace=0.05, hspace=0.08)
    cax = fig.add_axes((0.88, 0.1, 0.025, 0.8))
    fig.colorbar(image, cax=cax).set_label(f"2 m temperature [{units}]")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": PNG_SOFTWARE})
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)

"""The ``sphere`` domain: a global lat/lon field (ERA5 2 m temperature) on the unit sphere.

Grid order is (latitude, longitude), latitudes north to south (descending, as ERA5 and GASP
store them), longitudes 0 .. 360 - Δ eastwards. Two latitude layouts:

* ``poles`` (GASP): ``linspace(90, -90, n_lat)``, both poles included;
* ``centres`` (WeatherBench2's equiangular grids without poles): cell centres
  90 - (i + 1/2)·180/n_lat.

Coordinates are (cos φ cos λ, cos φ sin λ, sin φ). Model space is
2·(T - t_min)/(t_max - t_min) - 1 with GASP's constants (202.66 K, 320.93 K); values outside
that range stay outside, they are not clipped. ``resolution`` R means R latitude rows and the
training grid's aspect in longitude (R = 46 on the 46 × 90 GASP grid → 46 × 90; 92 → 92 × 180);
``(H, W)`` is exact (``121x240``, WeatherBench2's 1.5° grid, on the command line).
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import pydantic
import torch

from inrkit.domain import Domain
from inrkit.errors import ConfigError, DataError
from inrkit.observations import check_options
from inrkit.registry import PartConfig, domains

from ..common import is_prepared_cache
from .metrics import latitude_weights, sphere_metrics
from .render import preview_resolution, render_maps, to_dataset, write_netcdf, write_zarr_store
from .units import rmse_name as _rmse_name

NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf", ".cdf", ".h5", ".hdf5")
GRIB_SUFFIXES = (".grib", ".grb", ".grib1", ".grib2", ".grb2")
XARRAY_SUFFIXES = NETCDF_SUFFIXES + GRIB_SUFFIXES


class SphereDomainConfig(PartConfig):
    n_lat: int = pydantic.Field(46, ge=2)
    n_lon: int = pydantic.Field(90, ge=2)
    layout: Literal["poles", "centres"] = "poles"
    variable_units: str = "K"
    t_min: float = 202.66
    t_max: float = 320.93

    @pydantic.model_validator(mode="after")
    def _range(self):
        if not self.t_max > self.t_min:
            raise ValueError(f"t_max ({self.t_max}) must exceed t_min ({self.t_min})")
        return self


def looks_like_zarr(path: Path) -> bool:
    return path.is_dir() and (
        path.suffix.lower() == ".zarr" or any((path / m).exists() for m in ("zarr.json", ".zgroup", ".zarray", ".zmetadata"))
    )


@domains.register("sphere", config=SphereDomainConfig, description="global lat/lon fields (ERA5 2 m temperature) on the unit sphere")
class SphereDomain(Domain):
    coord_dim = 3
    channels = 1
    default_likelihood = "gaussian"
    builtin_dataset = "synthetic"

    def __init__(self, config: SphereDomainConfig):
        self.config = config
        self.grid_shape = (config.n_lat, config.n_lon)

    # -- the grid ---------------------------------------------------------------------------
    def resolve_resolution(self, resolution) -> tuple[int, int]:
        """R alone keeps the training grid's aspect (46 → 46 × 90 on the GASP grid); (H, W) is exact."""
        if resolution is None:
            return tuple(self.grid_shape)
        sizes = [int(resolution)] if isinstance(resolution, int) else [int(r) for r in resolution]
        if len(sizes) == 1:
            return (sizes[0], max(1, round(sizes[0] * self.config.n_lon / self.config.n_lat)))
        if len(sizes) != 2 or min(sizes) < 1:
            raise ConfigError(f"sphere resolution: expected latitude rows x longitudes such as 121x240, got {'x'.join(map(str, sizes))}")
        return (sizes[0], sizes[1])

    def latitudes(self, n_lat: int | None = None) -> np.ndarray:
        """Row latitudes in degrees, north to south."""
        n = n_lat or self.config.n_lat
        if self.config.layout == "poles":
            return np.linspace(90.0, -90.0, n)
        return 90.0 - (np.arange(n) + 0.5) * 180.0 / n

    def longitudes(self, n_lon: int | None = None) -> np.ndarray:
        n = n_lon or self.config.n_lon
        return np.arange(n) * (360.0 / n)

    def lat_weights(self, n_lat: int | None = None) -> torch.Tensor:
        return torch.from_numpy(latitude_weights(self.latitudes(n_lat))).float()

    def grid(self, resolution=None) -> torch.Tensor:
        n_lat, n_lon = self.resolve_resolution(resolution)
        phi = torch.from_numpy(np.deg2rad(self.latitudes(n_lat)))
        lam = torch.from_numpy(np.deg2rad(self.longitudes(n_lon)))
        phi, lam = torch.meshgrid(phi, lam, indexing="ij")
        xyz = torch.stack([phi.cos() * lam.cos(), phi.cos() * lam.sin(), phi.sin()], dim=-1)
        return xyz.reshape(-1, 3).float()

    # -- values -----------------------------------------------------------------------------
    @property
    def span(self) -> float:
        return self.config.t_max - self.config.t_min

    def physical(self, grids: torch.Tensor) -> torch.Tensor:
        """Model space → physical units (kelvin by default)."""
        return self.config.t_min + (grids + 1) * 0.5 * self.span

    def to_model(self, values):
        """Physical units → model space (numpy or torch)."""
        return 2 * (values - self.config.t_min) / self.span - 1

    @property
    def rmse_name(self) -> str:
        """The RMSE's metric name for the domain's units: ``rmse_k`` (temperatures), ``rmse_m_per_s`` (winds), ..."""
        return _rmse_name(self.config.variable_units)

    def metrics(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """psnr_unit[_weighted], psnr_sym[_weighted], ``rmse_name`` + [_weighted] (``rmse_k`` in kelvin), mse:
        see sphere/metrics.py."""
        return sphere_metrics(pred, target, self.lat_weights(pred.shape[-2]), self.span, self.rmse_name)

    # -- outputs ----------------------------------------------------------------------------
    def _dataset(self, grids: torch.Tensor, meta: dict | None = None, item_coords: dict | None = None):
        g = grids.detach().cpu().float()
        if g.dim() == 3:
            g = g[:, None]
        if g.dim() != 4 or g.shape[1] != 1:
            raise ValueError(f"expected (B, 1, n_lat, n_lon) sphere grids, got {tuple(grids.shape)}")
        fields = self.physical(g[:, 0]).numpy()
        lat, lon = self.latitudes(g.shape[-2]), self.longitudes(g.shape[-1])
        return to_dataset(fields, lat, lon, self.config.variable_units, meta, item_coords), fields, lat, lon

    def preview_resolution(self, resolution=None) -> tuple[int, int]:
        """Where to decode a field for a map a person can read (at least 90 latitude rows)."""
        return preview_resolution(self.resolve_resolution(resolution))

    def render(self, grids: torch.Tensor, out_dir: Path, stem: str = "samples", meta: dict | None = None,
               labels: Sequence[str] | None = None, preview: torch.Tensor | None = None,
               reference: torch.Tensor | None = None, item_coords: dict | None = None) -> list[Path]:
        """``{stem}.png`` (maps, drawn from ``preview`` when given: the same items decoded finer;
        with ``reference``, a difference panel per item) and ``{stem}.nc`` (CF NetCDF of ``grids``,
        physical units; ``item_coords`` such as ``{"time": [...]}`` label its sample axis)."""
        ds, fields, lat, lon = self._dataset(grids, meta, item_coords)
        out_dir = Path(out_dir)
        view, vlat, vlon = fields, lat, lon
        if preview is not None:
            _, view, vlat, vlon = self._dataset(preview)
        ref = None if reference is None else self._dataset(reference)[1]
        lo, hi = (float(np.nanmin(view)), float(np.nanmax(view))) if ref is None else (
            float(min(np.nanmin(view), np.nanmin(ref))), float(max(np.nanmax(view), np.nanmax(ref))))
        png = render_maps(view, vlat, vlon, out_dir / f"{stem}.png", self.config.variable_units, vmin=lo, vmax=hi,
                          titles=labels, reference=ref)
        nc = write_netcdf(ds, out_dir / f"{stem}.nc")
        return [png, nc]

    def grid_coords(self, grid: dict) -> tuple[torch.Tensor, tuple[int, int]]:
        """A dataset's own ``{latitude, longitude}`` (degrees, any order) → (N, 3) coordinates and its shape."""
        phi = torch.from_numpy(np.deg2rad(np.asarray(grid["latitude"], np.float64)))
        lam = torch.from_numpy(np.deg2rad(np.asarray(grid["longitude"], np.float64)))
        phi, lam = torch.meshgrid(phi, lam, indexing="ij")
        xyz = torch.stack([phi.cos() * lam.cos(), phi.cos() * lam.sin(), phi.sin()], dim=-1)
        return xyz.reshape(-1, 3).float(), (len(grid["latitude"]), len(grid["longitude"]))

    def render_on_grid(self, values: torch.Tensor | np.ndarray, grid: dict, out_dir: Path, stem: str,
                       physical: bool = False, item_coords: dict | None = None, meta: dict | None = None) -> list[Path]:
        """``{stem}.nc`` on a dataset's own grid: ``values`` (B, 1, n_lat, n_lon) in model space, or
        (B, n_lat, n_lon) in physical units with ``physical``; coordinates exactly as the files store them."""
        v = values if physical else self.physical(torch.as_tensor(values).detach().cpu().float())[:, 0]
        fields = np.asarray(v.numpy() if isinstance(v, torch.Tensor) else v, dtype=np.float64)
        ds = to_dataset(fields, np.asarray(grid["latitude"]), np.asarray(grid["longitude"]), self.config.variable_units,
                        meta, item_coords)
        return [write_netcdf(ds, Path(out_dir) / f"{stem}.nc")]

    def write_netcdf(self, grids: torch.Tensor, path: Path, meta: dict | None = None) -> Path:
        return write_netcdf(self._dataset(grids, meta)[0], Path(path))

    def write_zarr(self, grids: torch.Tensor, path: Path, meta: dict | None = None, zarr_format: int | None = None) -> Path:
        """The NetCDF content as a zarr store (a directory), written atomically."""
        return write_zarr_store(self._dataset(grids, meta)[0], Path(path), zarr_format)

    def describe(self) -> dict:
        c = self.config
        return {
            **super().describe(),
            "layout": c.layout,
            "coordinates": "(cos lat cos lon, cos lat sin lon, sin lat); rows north to south, lon 0..360-d",
            "value_range": [-1.0, 1.0],
            "physical": f"{c.variable_units} = t_min + (x + 1) / 2 * (t_max - t_min)",
            "variable_units": c.variable_units,
            "t_min": c.t_min,
            "t_max": c.t_max,
            "metrics": {
                "psnr_unit": "dB on [0,1] scaling", "psnr_sym": "dB on [-1,1] scaling, peak 1 (= psnr_unit - 6.02)",
                self.rmse_name: f"RMSE in {c.variable_units}", "*_weighted": "cell-area latitude weights",
                "mse": "model space",
            },
        }

    # -- a user's own files ---------------------------------------------------------------------
    observation_options = ("units", "variable")

    def read_observations(self, path: Path, **options):
        """Stations (CSV ``lat, lon, value``) or a NetCDF/zarr of scattered points or a gapped field."""
        from .observations import read_observations

        return read_observations(self, path, **check_options(options, self.observation_options, "sphere observations"))

    def read_item(self, path: Path, **options) -> torch.Tensor:
        from .observations import read_item

        return read_item(self, path, **check_options(options, self.observation_options, "sphere fields"))

    def render_spread(self, std: torch.Tensor, out_dir: Path, stem: str = "spread", meta: dict | None = None) -> list[Path]:
        from .observations import render_spread

        return render_spread(self, std, out_dir, stem, meta)

    # -- data -------------------------------------------------------------------------------
    def dataset_for(self, path: Path) -> str:
        path = Path(path)
        if is_prepared_cache(path):
            return "zarr_cache"
        if looks_like_zarr(path):
            return "era5_xarray"
        if path.is_file():
            if path.suffix.lower() == ".npz":
                raise DataError(f"{path}: give the folder of .npz files (GASP layout), not one file")
            return "era5_xarray"
        from .folders import folder_contents

        files, stores = folder_contents(path)
        npz = sum(p.suffix.lower() == ".npz" for p in files)
        xarray = sum(p.suffix.lower() in XARRAY_SUFFIXES for p in files) + len(stores)
        if npz and xarray:
            # one dataset reads one kind: picking one would drop the other without a word
            raise DataError(f"{path}: holds {npz} .npz file(s) (GASP layout) and {xarray} NetCDF/GRIB file(s) or zarr"
                            " store(s); keep one kind in the folder, or choose with --set data.name=era5_npz (the .npz)"
                            " or --set data.name=era5_xarray (the others)")
        if npz:
            return "era5_npz"
        if xarray:
            return "era5_xarray"
        raise DataError(
            f"{path}: no ERA5 data found (expected a NetCDF or GRIB file, a .zarr store, or a folder of .nc, .grib or .npz"
            " files or zarr stores)"
        )

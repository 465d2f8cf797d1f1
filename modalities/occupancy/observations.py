"""A user's own partial shapes: a voxel grid with unobserved voxels marked, or a list of points.

``read_observations``: a ``.npy``/``.pt`` grid (X, Y, Z) or (1, X, Y, Z) of any size, indexed
(x, y, z) like the domain, with occupancies in {0, 1} where observed; unobserved voxels hold the
``sentinel`` (default -1) or NaN, or are named by ``mask`` (a second array of the grid's shape,
true/1 = observed). Observations sit at the file's own voxel centres in [-1, 1]³, whatever its
resolution. A point list (CSV/TSV/text: ``x, y, z, occupied``) gives arbitrary points in [-1, 1]³.
``read_item``: one whole voxel grid, resampled to the domain (as the voxel-folder dataset does).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from inrkit.errors import DataError
from inrkit.observations import Observations

from ..common import centre_grid
from .datasets import _first_line
from .render import render_occupancy
from .voxelize import resample

GRID_SUFFIXES = (".npy", ".pt", ".pth")
TABLE_SUFFIXES = (".csv", ".tsv", ".txt")
COLUMNS = {"x": ("x",), "y": ("y",), "z": ("z",), "occupied": ("occupied", "occupancy", "occ", "inside", "value")}


def _array(path: Path, what: str) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path}: {what} file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file")
    try:
        if path.suffix.lower() == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(obj, dict) and len(obj) == 1:
                obj = next(iter(obj.values()))
            if not isinstance(obj, torch.Tensor):
                raise DataError(f"{path}: holds a {type(obj).__name__}; expected one voxel tensor")
            arr = obj.detach().float().numpy() if obj.is_floating_point() else obj.detach().numpy()
    except DataError:
        raise
    except Exception as err:  # numpy and torch raise many types for corrupt files
        raise DataError(f"{path}: unreadable {what} ({_first_line(err)})") from None
    if arr.ndim == 4:
        if arr.shape[0] != 1:
            raise DataError(f"{path}: {what} of shape {tuple(arr.shape)} has {arr.shape[0]} channels; occupancy has 1")
        arr = arr[0]
    if arr.ndim != 3 or arr.size == 0:
        raise DataError(f"{path}: {what} of shape {tuple(arr.shape)}; expected (X, Y, Z) or (1, X, Y, Z)")
    if not (arr.dtype == bool or np.issubdtype(arr.dtype, np.number)):
        raise DataError(f"{path}: {what} of dtype {arr.dtype}; expected numbers")
    return arr.astype(np.float64)


def _occupancies(path: Path, v: np.ndarray) -> np.ndarray:
    bad = np.flatnonzero(~np.isfinite(v) | (v < 0) | (v > 1))
    if bad.size:
        raise DataError(f"{path}: observed value {v[bad[0]]:g} is not an occupancy in [0, 1] (use --sentinel or"
                        " --mask to mark unobserved voxels)")
    return (v > 0.5).astype(np.float32)


def _grid(path: Path, mask, sentinel: float):
    arr = _array(path, "voxel grid")
    if mask is not None:
        m = _array(Path(mask), "mask")
        if m.shape != arr.shape:
            raise DataError(f"{mask}: mask of shape {m.shape}, the grid {path} is {arr.shape}")
        seen = m > 0.5
    else:
        seen = np.isfinite(arr) & (arr != sentinel)
    values = _occupancies(path, arr[seen])
    coords = centre_grid(arr.shape)[torch.from_numpy(seen.reshape(-1))]
    preview = torch.from_numpy(np.where(seen, np.nan_to_num(arr) > 0.5, False).astype(np.float32))[None]
    return coords, values, preview, {"format": "voxel grid", "grid": list(arr.shape),
                                     "marked_by": f"mask {mask}" if mask is not None else f"sentinel {sentinel:g} or NaN"}


def _points(path: Path):
    from ..table import read_table

    cols, _ = read_table(path, COLUMNS)
    xyz = np.stack([cols["x"], cols["y"], cols["z"]], -1)
    bad = np.flatnonzero(np.abs(xyz).max(1) > 1 + 1e-6)
    if bad.size:
        raise DataError(f"{path}: point {bad[0] + 1} {tuple(np.round(xyz[bad[0]], 4))} lies outside the cube [-1, 1]^3")
    return torch.from_numpy(xyz).float(), _occupancies(path, cols["occupied"]), None, {"format": "point list"}


def read_observations(domain, path, mask=None, sentinel: float | None = None) -> Observations:
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in GRID_SUFFIXES:
        coords, values, preview, meta = _grid(path, mask, -1.0 if sentinel is None else float(sentinel))
    elif suffix in TABLE_SUFFIXES:
        if mask is not None or sentinel is not None:
            raise DataError(f"{path}: --mask and --sentinel are for voxel grids; a point list lists observed points only")
        coords, values, preview, meta = _points(path)
    else:
        raise DataError(f"{path}: unknown observation format; expected a voxel grid ({', '.join(GRID_SUFFIXES)})"
                        f" or a point list ({', '.join(TABLE_SUFFIXES)}: x, y, z, occupied)")
    if values.size == 0:
        raise DataError(f"{path}: no observed voxel")
    return Observations(coords, torch.from_numpy(values)[:, None], source=str(path), units="occupancy",
                        value_scale=1.0, preview=preview, meta=meta)


def read_item(domain, path) -> torch.Tensor:
    path = Path(path)
    if path.suffix.lower() not in GRID_SUFFIXES:
        raise DataError(f"{path}: expected a voxel grid ({', '.join(GRID_SUFFIXES)})")
    arr = _array(path, "voxel grid")
    if len(set(arr.shape)) != 1:
        raise DataError(f"{path}: voxel grid of shape {arr.shape}; a whole item must be cubic (R, R, R)")
    vol = resample(_occupancies(path, arr.reshape(-1)).reshape(arr.shape) > 0.5, domain.grid_shape[0])
    return torch.from_numpy(np.ascontiguousarray(vol, dtype=np.float32))[None]


def render_spread(domain, std: torch.Tensor, out_dir: Path, stem: str) -> list[Path]:
    """The uncertain region: meshes + preview of voxels whose occupancy std across samples is ≥ 0.25."""
    return render_occupancy((std.float() / 0.5).clamp(0, 1), Path(out_dir), stem, domain.config.mesh_format,
                            domain.config.preview_size)

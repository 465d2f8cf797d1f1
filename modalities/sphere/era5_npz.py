"""``era5_npz``: GASP's layout, a folder of ``.npz`` files (latitude, longitude, temperature), one time step each."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pydantic
import torch

from inrkit.errors import DataError
from inrkit.registry import datasets

from ..common import SplitFields, TensorDataset, select_split
from .folders import folder_contents
from .to_domain import REGRID, conversion_note, dataset_meta, domain_regridder
from .units import unit_conversion
from .xarray_source import ALIASES, LAT_NAMES, LON_NAMES


class ERA5NpzConfig(SplitFields):
    """A folder of GASP-style ``.npz`` files, one time step each.

    ``.npz`` files carry no units attribute, so ``units`` declares what the temperature arrays are
    in: ``K`` (the default, as GASP writes them), ``degC`` (also ``°C``, ``C``, ``celsius``) or
    ``degF`` (also ``°F``, ``F``, ``fahrenheit``). Values are converted to the domain's ``variable_units`` with
    :func:`unit_conversion` before scaling to model space; other units are an error.
    """

    path: str
    units: str = pydantic.Field(
        "K", min_length=1, description="units of the files' temperature arrays (.npz holds none): K, degC or degF"
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
        files = [p for p in folder_contents(root)[0] if p.suffix.lower() == ".npz"]
        if not files:
            raise DataError(f"{root}: no .npz files found in this folder")
        convert = unit_conversion(config.units, domain.config.variable_units, f"{root} (data.units)")
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
                regridders[key] = domain_regridder(lat, lon, domain, str(files[i]), config.regrid)
            items[k, 0] = domain.to_model(convert(regridders[key](field)))
        self.files = [files[i] for i in keep]
        super().__init__(torch.from_numpy(items), dataset_meta(
            domain, config, str(root), n_files=len(files), n_items=len(keep), file_units=config.units,
            conversion=conversion_note(domain, f"{len(keep)} .npz fields", tuple(next(iter(regridders.values())).src_shape)
                                        if regridders else None, config.units,
                                        method=config.regrid),
        ))

    def item_labels(self, indices) -> list[str]:
        return [self.files[i].name for i in indices]

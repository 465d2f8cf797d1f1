"""The ``sphere`` modality (ERA5): domain, datasets (xarray, GASP .npz, synthetic), metrics, regridding, maps and NetCDF/zarr output."""
from . import datasets, domain, metrics, regrid, render  # noqa: F401  (importing registers the parts)
from .domain import SphereDomain, SphereDomainConfig
from .metrics import latitude_weights
from .regrid import Regridder, regrid as regrid_field

__all__ = ["SphereDomain", "SphereDomainConfig", "Regridder", "latitude_weights", "regrid_field"]

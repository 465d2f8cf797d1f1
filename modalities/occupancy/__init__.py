"""The ``occupancy`` modality: 3D shapes as voxel occupancies; datasets, metrics, meshes, previews."""
from . import chairs, datasets, domain, metrics, render, voxelize  # noqa: F401  (importing registers the parts)
from .domain import OccupancyDomain, OccupancyDomainConfig
from .metrics import chamfer_distance, occupancy_metrics

__all__ = ["OccupancyDomain", "OccupancyDomainConfig", "chamfer_distance", "occupancy_metrics"]

"""The ``occupancy`` domain: 3D shapes as voxel occupancies on [-1, 1]^3.

Grid order is (x, y, z): a grid tensor ``(B, 1, X, Y, Z)`` holds voxel ``[i, j, k]`` centred at
``(x_i, y_j, z_k)`` with ``x_i = -1 + (2i + 1) / R``; coordinates ``(N, 3)`` are columns (x, y, z)
flattened in C order (x slowest), as ``torch.meshgrid(..., indexing="ij")`` does. +y is up (the
ShapeNet convention, used by the built-in chairs and the preview renderer). Model space is
{0, 1}; the INR emits logits, ``postprocess`` turns them into probabilities, and the likelihood
is Bernoulli.
"""
from __future__ import annotations

from pathlib import Path
import pydantic
import torch

from inrkit.domain import Domain
from inrkit.errors import ConfigError, DataError
from inrkit.observations import check_options
from inrkit.registry import PartConfig, domains

from ..common import centre_grid, is_prepared_cache
from .datasets import VOXEL_EXTENSIONS, find_mesh_files, find_voxel_files
from .meshfiles import MESH_EXTENSIONS
from .metrics import occupancy_metrics
from .render import mesh_formats, preview_resolution, render_occupancy


# what a data folder may hold, as the error messages name it
_KINDS = f"voxel tensors ({'/'.join(VOXEL_EXTENSIONS)}) or meshes ({'/'.join(MESH_EXTENSIONS)})"


class OccupancyDomainConfig(PartConfig):
    resolution: int = pydantic.Field(32, ge=4, le=256, description="voxels per side (32 as the papers; 64 works)")
    mesh_format: str = pydantic.Field("ply", description="ply, obj, glb, several joined with '+' (ply+obj), or none")
    chamfer_points: int = pydantic.Field(2048, ge=16, description="surface points per shape for the Chamfer distance")
    preview_size: int = pydantic.Field(256, ge=32, le=1024, description="pixels per item (one view) in the preview PNG")

    @pydantic.field_validator("mesh_format")
    @classmethod
    def _formats(cls, v: str) -> str:
        mesh_formats(v)
        return v


@domains.register("occupancy", config=OccupancyDomainConfig, description="3D shapes: voxel centres in [-1,1]^3 as (x, y, z), occupancy in {0,1}")
class OccupancyDomain(Domain):
    coord_dim = 3
    channels = 1
    default_likelihood = "bernoulli"
    builtin_dataset = "chairs"

    def __init__(self, config: OccupancyDomainConfig):
        self.config = config
        self.grid_shape = (config.resolution,) * 3

    def grid(self, resolution=None) -> torch.Tensor:
        return centre_grid(self.resolve_resolution(resolution))

    def postprocess(self, pred: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(pred)

    def metrics(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """accuracy (all voxels), iou (occupied voxels), chamfer (squared, cube units): see metrics.py."""
        return occupancy_metrics(pred, target, n_points=self.config.chamfer_points)

    def preview_resolution(self, resolution=None) -> tuple[int, int, int]:
        """Where to decode a shape for its preview (at least 64 voxels per side)."""
        return (preview_resolution(self.resolve_resolution(resolution)[0]),) * 3

    def render(self, grids: torch.Tensor, out_dir: Path, stem: str = "samples", meta: dict | None = None,
               mesh_format: str | None = None, labels=None, preview: torch.Tensor | None = None,
               reference: torch.Tensor | None = None, transforms: list | None = None) -> list[Path]:
        """A marching-cubes mesh per item (``mesh_format``: ply, obj, glb joined by '+', default from
        the config; ``transforms``: per item (centre, scale) back to source units) and ``{stem}.png``."""
        try:
            formats = mesh_format or self.config.mesh_format
            mesh_formats(formats)
        except ValueError as err:
            raise ConfigError(f"--format: {err}") from None
        return render_occupancy(grids, Path(out_dir), stem, formats, self.config.preview_size, labels=labels,
                                preview_grids=preview, transforms=transforms)

    # -- a user's own files ---------------------------------------------------------------------
    observation_options = ("mask", "sentinel")

    def read_observations(self, path: Path, **options):
        """A partial voxel grid (unobserved: sentinel, NaN or ``mask``) or a point list x, y, z, occupied."""
        from .observations import read_observations

        return read_observations(self, path, **check_options(options, self.observation_options, "occupancy observations"))

    def read_item(self, path: Path, **options) -> torch.Tensor:
        from .observations import read_item

        check_options(options, (), "whole voxel grids")
        return read_item(self, path)

    def render_spread(self, std: torch.Tensor, out_dir: Path, stem: str = "spread", meta: dict | None = None) -> list[Path]:
        from .observations import render_spread

        return render_spread(self, std, out_dir, stem)

    def describe(self) -> dict:
        return {
            **super().describe(),
            "coordinates": "voxel centres in [-1,1]^3, grid axes (x, y, z), +y up",
            "value_range": [0.0, 1.0],
            "values": "occupancy in {0,1}; the INR emits logits (postprocess: sigmoid)",
            "metrics": {
                "accuracy": "fraction of all voxels right, prediction thresholded at p > 0.5",
                "iou": "occupied voxels only; 1 for two empty shapes",
                "chamfer": f"squared L2, sum of both directions' means, {self.config.chamfer_points} "
                           "marching-cubes surface points, units of the [-1,1] cube; inf if one shape is empty",
            },
        }

    def dataset_for(self, path: Path) -> str:
        path = Path(path)
        if is_prepared_cache(path):
            return "zarr_cache"
        if not path.is_dir():
            raise DataError(f"{path}: expected a folder of {_KINDS}")
        if find_voxel_files(path):
            return "voxel_folder"
        if find_mesh_files(path):
            return "mesh_folder"
        raise DataError(f"{path}: no {_KINDS} found in this folder")

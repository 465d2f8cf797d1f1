"""The ``image`` domain: a 2D pixel grid with 1 (gray) or 3 (RGB) channels.

Coordinates are pixel centres in [-1, 1]^2 ordered (y, x) = (row, column): column 0 of a
coordinate is the row position (-1 at the top edge, +1 at the bottom), column 1 the column
position (-1 left, +1 right). Grids flatten in C order, rows first, as ``torch.meshgrid(...,
indexing="ij")`` does. Model space is [-1, 1]; saved images are (x + 1) / 2 on [0, 1].
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Sequence

import pydantic
import torch

from inrkit.domain import Domain
from inrkit.errors import DataError
from inrkit.observations import check_options
from inrkit.registry import PartConfig, domains

from ..common import centre_grid, is_prepared_cache
from .files import IMAGE_EXTENSIONS, find_images, no_images_error
from .metrics import image_metrics, to_unit
from .render import preview_resolution, render_png_grid


class ImageDomainConfig(PartConfig):
    resolution: int | list[int] = 32
    channels: Literal[1, 3] = 3

    @pydantic.field_validator("resolution")
    @classmethod
    def _positive(cls, v):
        sizes = [v] if isinstance(v, int) else v
        if len(sizes) not in (1, 2) or any(s < 1 for s in sizes):
            raise ValueError("must be a positive int or [height, width]")
        return v


def _as_hw(resolution: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(resolution, int):
        return (resolution, resolution)
    sizes = [int(r) for r in resolution]
    return (sizes[0], sizes[0]) if len(sizes) == 1 else (sizes[0], sizes[1])


@domains.register("image", config=ImageDomainConfig, description="2D images: pixel centres in [-1,1]^2 as (y, x); gray or RGB")
class ImageDomain(Domain):
    coord_dim = 2
    default_likelihood = "gaussian"
    builtin_dataset = "faces"

    def __init__(self, config: ImageDomainConfig):
        self.config = config
        self.channels = config.channels
        self.grid_shape = _as_hw(config.resolution)

    def resolve_resolution(self, resolution) -> tuple[int, int]:
        return tuple(self.grid_shape) if resolution is None else _as_hw(resolution)

    def grid(self, resolution=None) -> torch.Tensor:
        return centre_grid(self.resolve_resolution(resolution))

    def metrics(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """psnr (dB, [0,1] clamped), ssim (Gaussian 11/1.5, [0,1]), mse (model space)."""
        return image_metrics(pred, target)

    def load_sample_features(self, path):
        """FID's feature network (TorchScript ``.pt`` or ``.pt2``); see :mod:`inrkit_modalities.image.fid`."""
        if path is None:
            return None
        from .fid import load_feature_network

        return load_feature_network(path)

    def sample_metrics(self, samples: torch.Tensor, real: torch.Tensor, features=None) -> dict:
        """FID of the samples against the held-out images (unavailable without a feature network)."""
        from .fid import compute_fid

        return compute_fid(real, samples, features)

    def physical(self, grids: torch.Tensor) -> torch.Tensor:
        """Model space → intensities on [0, 1] (clamped), as saved in PNGs."""
        return to_unit(grids)

    def preview_resolution(self, resolution=None) -> tuple[int, int]:
        """Where to decode an item for a preview a person can judge (shorter side >= 256 px)."""
        return preview_resolution(self.resolve_resolution(resolution))

    def render(self, grids: torch.Tensor, out_dir: Path, stem: str = "samples", meta: dict | None = None,
               labels: Sequence[str] | None = None, preview: torch.Tensor | None = None,
               reference: torch.Tensor | None = None) -> list[Path]:
        """``{stem}.png``: labelled tiles drawn from ``preview`` (the same items decoded at
        :meth:`preview_resolution`) or enlarged; ``{stem}-pixels.png``: the exact pixels when smaller."""
        return render_png_grid(grids.detach().cpu(), Path(out_dir) / f"{stem}.png", labels=labels,
                               preview=None if preview is None else preview.detach().cpu())

    # -- a user's own files ---------------------------------------------------------------------
    observation_options = ("mask",)

    def read_observations(self, path: Path, **options):
        """An image (any format the image folders read, any size) and ``mask=MASK`` of its size, white = observed."""
        from .observations import read_observations

        return read_observations(self, path, **check_options(options, self.observation_options, "image observations"))

    def read_item(self, path: Path, **options) -> torch.Tensor:
        from .observations import read_item

        check_options(options, (), "whole images")
        return read_item(self, path)

    def render_spread(self, std: torch.Tensor, out_dir: Path, stem: str = "spread", meta: dict | None = None) -> list[Path]:
        from .observations import render_spread

        return render_spread(std, out_dir, stem)

    def describe(self) -> dict:
        return {
            **super().describe(),
            "coordinates": "pixel centres in [-1,1]^2, (y, x) = (row, column), y down",
            "value_range": [-1.0, 1.0],
            "physical": "intensity on [0,1] = (x + 1) / 2",
            "metrics": {"psnr": "dB on [0,1], clamped", "ssim": "Gaussian window 11, sigma 1.5, on [0,1]",
                        "mse": "model space [-1,1]"},
        }

    def dataset_for(self, path: Path) -> str:
        path = Path(path)
        if is_prepared_cache(path):
            return "zarr_cache"
        if path.is_file():
            raise DataError(f"{path}: expected a folder of images ({', '.join(IMAGE_EXTENSIONS)}), got a file")
        if path.is_dir():
            found = find_images(path)
            if not found.files:
                raise no_images_error(path, IMAGE_EXTENSIONS, found)
        return "image_folder"

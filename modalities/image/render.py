"""Image outputs: one PNG mosaic of model-space grids at whatever resolution they were decoded."""
from __future__ import annotations

from pathlib import Path

import torch

from ..common import tile, to_uint8, write_png
from .metrics import to_unit


def render_png_grid(grids: torch.Tensor, path: Path, ncol: int | None = None) -> Path:
    """(B, c, H, W) model-space grids, c = 1 or 3 → a PNG mosaic (gray or RGB)."""
    if grids.dim() != 4 or grids.shape[1] not in (1, 3):
        raise ValueError(f"expected (B, 1|3, H, W) image grids, got {tuple(grids.shape)}")
    images = to_uint8(to_unit(grids).permute(0, 2, 3, 1))
    return write_png(tile(images, ncol=ncol), path)

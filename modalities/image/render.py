"""Image outputs: a labelled PNG mosaic at a size a person can judge, plus the exact pixels when
the items are smaller than that.

Samples and reconstructions are functions, so callers decode them again at
:func:`preview_resolution` and pass that as ``preview``; data (targets) without one are enlarged
with nearest-neighbour copies, so every pixel stays visible as what it is.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..common import PREVIEW_PX, columns, labelled_tile, tile, to_uint8, write_png
from .metrics import to_unit


def preview_resolution(shape: Sequence[int]) -> tuple[int, int]:
    """The (H, W) a preview tile is drawn at: the shorter side at least PREVIEW_PX, aspect kept."""
    h, w = int(shape[0]), int(shape[1])
    if min(h, w) >= PREVIEW_PX:
        return h, w
    s = PREVIEW_PX / min(h, w)
    return max(PREVIEW_PX, round(h * s)), max(PREVIEW_PX, round(w * s))


def _mosaic_pixels(grids: torch.Tensor) -> np.ndarray:
    return to_uint8(to_unit(grids).permute(0, 2, 3, 1))


def render_png_grid(grids: torch.Tensor, path: Path, ncol: int | None = None, labels: Sequence[str] | None = None,
                    preview: torch.Tensor | None = None) -> list[Path]:
    """(B, c, H, W) model-space grids, c = 1 or 3 → ``path``: the labelled preview mosaic; and, when
    the items are smaller than a preview tile, ``{stem}-pixels.png`` with their exact pixels."""
    if grids.dim() != 4 or grids.shape[1] not in (1, 3):
        raise ValueError(f"expected (B, 1|3, H, W) image grids, got {tuple(grids.shape)}")
    path = Path(path)
    view = grids if preview is None else preview.to(grids.dtype)
    size = preview_resolution(view.shape[-2:])
    if tuple(view.shape[-2:]) != size:
        view = F.interpolate(view.float(), size=size, mode="nearest")
    paths = [write_png(labelled_tile(_mosaic_pixels(view), labels, ncol=ncol), path)]
    if tuple(grids.shape[-2:]) != size:
        native = path.with_name(f"{path.stem}-pixels.png")
        paths.append(write_png(tile(_mosaic_pixels(grids), ncol=ncol or columns(grids.shape[0])), native))
    return paths

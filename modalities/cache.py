"""Prepared-dataset caches: any dataset written once to a zarr store, chunked by sample, then streamed.

Layout of ``STORE.zarr`` (a zarr group):

- ``data``: float32 ``(n, c, *grid)``, chunks of ``(chunk_items, c, *grid)``;
- ``split``: uint8 ``(n,)``, 0 = train, 1 = val, the source's own split when it has one
  (``split_labels``), else ``inrkit.data.split_indices`` with the source's ``val_fraction``/``seed``;
- attributes: ``inrkit_format``/``format_version``, the inrkit version, the domain and dataset specs,
  the source dataset's ``meta``, ``shape``, ``dtype``, ``count``, plus the caller's ``meta``.

The store is written through :func:`inrkit.outputs.output_file`: under a temporary name beside
``out``, renamed into place at the end, so a failed or interrupted prepare (a full disk...) leaves
nothing half-written; and only a store inrkit wrote there is ever replaced.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Literal

import numpy as np
import pydantic
import torch
from torch.utils.data import Dataset

from inrkit.data import split_indices
from inrkit.errors import DataError
from inrkit.io import plain
from inrkit.outputs import check_replaceable as _inrkit_wrote, output_file
from inrkit.registry import PartConfig, datasets

FORMAT = "inrkit-prepared-cache"
FORMAT_VERSION = 1


def _read_attrs(path: Path) -> dict | None:
    """The group attributes of a zarr v3 (``zarr.json``) or v2 (``.zattrs``) store, read as JSON."""
    for name, key in (("zarr.json", "attributes"), (".zattrs", None)):
        f = path / name
        if f.is_file():
            try:
                doc = json.loads(f.read_text())
            except (OSError, ValueError):
                return None
            attrs = doc.get(key, {}) if key else doc
            return attrs if isinstance(attrs, dict) else None
    return None


def is_prepared_cache(path: str | Path) -> bool:
    """Whether ``path`` is a store written by :func:`prepare_cache` (``inrkit data prepare``)."""
    path = Path(path)
    if not path.is_dir():
        return False
    attrs = _read_attrs(path)
    return bool(attrs) and attrs.get("inrkit_format") == FORMAT


def check_replaceable(out: Path, overwrite: bool) -> None:
    """``out`` may be written: it does not exist, or inrkit wrote it there (unchanged since) and
    ``overwrite`` is given. Anything else there (a user's folder or file) is never replaced."""
    if _inrkit_wrote(out) and not overwrite:
        raise DataError(f"output exists: {out} (pass --overwrite to replace it)")


def _split_labels(dataset, n: int) -> np.ndarray:
    own = getattr(dataset, "split_labels", None)
    if own is not None:
        labels = np.asarray(own)
        if labels.dtype.kind in "US":
            labels = (labels == "val").astype(np.uint8)
        if labels.shape == (n,):
            return labels.astype(np.uint8)
    config = getattr(dataset, "config", None)
    val_fraction = getattr(config, "val_fraction", 0.1)
    seed = getattr(config, "seed", 0)
    labels = np.zeros(n, dtype=np.uint8)
    labels[split_indices(n, "val", val_fraction, seed)] = 1
    return labels


def _create_array(group, name: str, shape, chunks, dtype):
    # zarr 3 spells it create_array; zarr 2 create_dataset
    create = getattr(group, "create_array", None) or group.create_dataset
    return create(name, shape=shape, chunks=chunks, dtype=dtype)


def prepare_cache(
    dataset: Dataset,
    out: str | Path,
    meta: dict | None = None,
    chunk_items: int = 1,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write every item of ``dataset`` to the zarr store ``out``; returns its path.

    ``meta`` (plain data: the domain and dataset specs, the source path...) is stored in the
    attributes. ``progress(done, total)`` is called after each item.
    """
    import zarr

    import inrkit

    out = Path(out).expanduser()
    check_replaceable(out, overwrite)
    if chunk_items < 1:
        raise DataError(f"chunk_items must be >= 1, got {chunk_items}")
    n = len(dataset)
    if n == 0:
        raise DataError("dataset is empty: nothing to prepare")
    with output_file(out) as store:  # a temporary beside out, renamed into place once complete
        first = torch.as_tensor(dataset[0])
        item_shape = tuple(first.shape)
        group = zarr.open_group(str(store), mode="w")
        data = _create_array(group, "data", (n, *item_shape), (min(chunk_items, n), *item_shape), "float32")
        buf = np.empty((min(chunk_items, n), *item_shape), dtype=np.float32)
        lo = 0
        for i in range(n):
            x = first if i == 0 else torch.as_tensor(dataset[i])
            if tuple(x.shape) != item_shape:
                raise DataError(f"item {i} has shape {tuple(x.shape)}, item 0 has {item_shape}: a cache needs one item shape")
            buf[i - lo] = x.detach().to(torch.float32).cpu().numpy()
            if not np.isfinite(buf[i - lo]).all():
                raise DataError(f"item {i} of the dataset holds non-finite values (NaN or inf): nothing was written")
            if i - lo + 1 == len(buf) or i == n - 1:
                data[lo : i + 1] = buf[: i + 1 - lo]
                lo = i + 1
            if progress is not None:
                progress(i + 1, n)
        split = _create_array(group, "split", (n,), (n,), "uint8")
        split[:] = _split_labels(dataset, n)
        dataset_meta = getattr(dataset, "meta", {}) or {}
        group.attrs.update(plain({  # zarr attributes are JSON
            **(meta or {}),
            "inrkit_format": FORMAT,
            "format_version": FORMAT_VERSION,
            "inrkit_version": inrkit.__version__,
            "dataset_meta": dataset_meta,
            "shape": [n, *item_shape],
            "item_shape": list(item_shape),
            "dtype": "float32",
            "count": n,
            "split_labels": "0 = train, 1 = val",
        }))
    return out


class ZarrCacheConfig(PartConfig):
    path: str
    split: Literal["train", "val", "all"] = "train"
    val_fraction: float | None = pydantic.Field(None, ge=0.0, lt=1.0, description="re-split with this fraction (default: the stored split)")
    seed: int | None = pydantic.Field(None, description="re-split with this seed (default: the stored split)")


@datasets.register("zarr_cache", config=ZarrCacheConfig, description="a store written by 'inrkit data prepare' (zarr, chunked by sample), streamed")
class ZarrCache(Dataset):
    """Items read chunk by chunk on demand; safe to use from DataLoader worker processes."""

    def __init__(self, config: ZarrCacheConfig, domain):
        self.config, self.domain = config, domain
        self.path = Path(config.path).expanduser()
        if not self.path.exists():
            raise DataError(f"prepared cache does not exist: {self.path}")
        attrs = _read_attrs(self.path) if self.path.is_dir() else None
        if not attrs or attrs.get("inrkit_format") != FORMAT:
            raise DataError(f"{self.path}: not a store written by 'inrkit data prepare'")
        if int(attrs.get("format_version", 0)) > FORMAT_VERSION:
            raise DataError(f"{self.path}: cache format version {attrs['format_version']} is newer than this inrkit reads ({FORMAT_VERSION})")
        item_shape = tuple(int(s) for s in attrs["item_shape"])
        expected = (int(domain.channels), *(int(s) for s in domain.grid_shape))
        built_for = (attrs.get("domain") or {}).get("name")
        here = getattr(domain, "registry_name", None)
        if built_for and here and built_for != here:
            raise DataError(f"{self.path}: prepared for the '{built_for}' domain, not '{here}'")
        if item_shape != expected:
            raise DataError(f"{self.path}: cached items have shape {item_shape} but the domain expects {expected}; "
                            "prepare the cache again for this domain or change the domain's resolution/channels")
        n = int(attrs["count"])
        if config.val_fraction is None and config.seed is None and config.split != "all":
            labels = self._open()["split"][:]
            want = 1 if config.split == "val" else 0
            self.ids = np.nonzero(labels == want)[0]
            if len(self.ids) == 0:
                raise DataError(f"{self.path}: the stored split has no '{config.split}' items")
        else:
            source = attrs.get("dataset") or {}
            self.ids = split_indices(
                n, config.split,
                float(source.get("val_fraction", 0.1)) if config.val_fraction is None else config.val_fraction,
                int(source.get("seed", 0)) if config.seed is None else config.seed,
            )
        self._group = None  # reopened lazily, once per process
        self.meta = {
            **(attrs.get("dataset_meta") or {}),
            "prepared_cache": str(self.path),
            "prepared_from": attrs.get("dataset"),
            "split": config.split,
            "n_items": len(self.ids),
        }

    def _open(self):
        import zarr

        try:
            return zarr.open_group(str(self.path), mode="r")
        except Exception as err:
            raise DataError(f"{self.path}: unreadable zarr store ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None

    def __getstate__(self):
        # zarr handles stay out of pickles sent to DataLoader workers; each worker reopens the store
        state = dict(self.__dict__)
        state["_group"] = None
        return state

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> torch.Tensor:
        if self._group is None:
            self._group = self._open()
        item = np.asarray(self._group["data"][int(self.ids[i])], dtype=np.float32)
        bad = int((~np.isfinite(item)).sum())
        if bad:  # a store edited by hand, or written by an older inrkit
            raise DataError(f"{self.path}: variable 'data', item {int(self.ids[i])} holds {bad} non-finite value(s) (NaN or inf)")
        return torch.from_numpy(item)

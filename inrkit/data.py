"""Opening datasets for a domain, and the train/val split every dataset shares."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError
from .registry import build


def dataset_spec(domain, path: str | Path | None = None, name: str | None = None, **fields: Any) -> dict[str, Any]:
    """The one dataset chooser: ``{name, [path], **fields}`` of the dataset that reads ``path``.

    ``name`` when given (e.g. the built-in ``digits``); else the domain's ``builtin_dataset`` when
    ``path`` is None, or ``domain.dataset_for(path)`` (the caller checks that ``path`` exists).
    """
    if name is not None:
        return {"name": name, **fields, **({} if path is None else {"path": str(Path(path).expanduser())})}
    if path is None:
        return {"name": domain.builtin_dataset, **fields}
    path = Path(path).expanduser()
    return {"name": domain.dataset_for(path), "path": str(path), **fields}


def open_dataset(domain, path: str | Path | None = None, split: str = "train", name: str | None = None, **overrides: Any):
    """The dataset :func:`dataset_spec` chooses, built for ``split``.

    ``overrides`` are dataset config fields (``None`` values are ignored).
    """
    if name is None and path is not None and not Path(path).expanduser().exists():
        raise DataError(f"data path does not exist: {Path(path).expanduser()}")
    spec = dataset_spec(domain, path, name, split=split, **overrides)
    return build("datasets", spec.pop("name"), context={"domain": domain}, **spec)


class SmallSplitWarning(UserWarning):
    """The data is too small to hold anything out."""


def split_indices(n: int, split: str, val_fraction: float = 0.1, seed: int = 0) -> np.ndarray:
    """Deterministic split of ``range(n)``: a seeded permutation, the last ``val_fraction`` held out.

    ``val`` always gets at least one item when n >= 2 so that held-out metrics exist.
    """
    if split not in ("train", "val", "all"):
        raise DataError(f"unknown split '{split}' (expected train, val or all)")
    if n == 0:
        raise DataError("dataset is empty")
    idx = np.arange(n)
    if split != "all" and n < 2:
        warnings.warn(f"the data holds {n} item: too few to hold any out, so the training and the held-out split"
                      " are that one item (held-out metrics then measure the training item)", SmallSplitWarning, stacklevel=2)
    if split == "all" or n < 2:
        return idx
    perm = np.random.default_rng(seed).permutation(n)
    n_val = min(n - 1, max(1, int(round(n * val_fraction))))
    return np.sort(perm[n - n_val :]) if split == "val" else np.sort(perm[: n - n_val])

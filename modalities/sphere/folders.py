"""What a folder of sphere data holds: its files and zarr stores, sorted by relative path.

Passed over: hidden entries (``.cache/``, ``.DS_Store``), what lies inside a zarr store (the
store is one source), stores written by ``inrkit data prepare``, and folders inrkit wrote (a run
directory, an output folder such as ``inrkit-show/``): their samples would otherwise be read
as data. Symbolic links to folders are followed, each real folder once.
"""
from __future__ import annotations

import os
from pathlib import Path

from inrkit.outputs import MANIFEST
from inrkit.runs import CONFIG_FILE, written_by_a_run

from ..common import is_prepared_cache
from .domain import looks_like_zarr


def _inrkit_output(folder: Path) -> bool:
    return (folder / MANIFEST).is_file() or ((folder / CONFIG_FILE).is_file() and written_by_a_run(folder / CONFIG_FILE))


def folder_contents(root: Path) -> tuple[list[Path], list[Path]]:
    """(files, zarr stores) under ``root``, each sorted."""
    files: list[Path] = []
    stores: list[Path] = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        here = Path(dirpath)
        real = os.path.realpath(here)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        keep = []
        for name in sorted(dirnames):
            sub = here / name
            if name.startswith(".") or _inrkit_output(sub) or is_prepared_cache(sub):
                continue
            if looks_like_zarr(sub):
                stores.append(sub)
            else:
                keep.append(name)
        dirnames[:] = keep
        files += [here / f for f in filenames if not f.startswith(".") and (here / f).is_file()]
    return sorted(files), sorted(stores)

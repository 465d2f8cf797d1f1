"""What a folder of sphere data holds: its files and zarr stores, sorted by relative path.

Passed over: hidden entries (``.cache/``, ``.DS_Store``), what lies inside a zarr store (the
store is one source), stores written by ``inrkit data prepare``, and folders inrkit wrote (a run
directory, an output folder such as ``inrkit-show/``): their samples would otherwise be read
as data. Symbolic links to folders are followed, each real folder once.
"""
from __future__ import annotations

from pathlib import Path

from ..common import walk_data
from .domain import looks_like_zarr


def folder_contents(root: Path) -> tuple[list[Path], list[Path]]:
    """(files, zarr stores) under ``root``, each sorted."""
    files: list[Path] = []
    stores: list[Path] = []
    for here, dirnames, filenames in walk_data(root):
        keep = []
        for name in dirnames:
            sub = here / name
            if looks_like_zarr(sub):
                stores.append(sub)
            else:
                keep.append(name)
        dirnames[:] = keep
        files += [here / f for f in filenames if (here / f).is_file()]
    return sorted(files), sorted(stores)

"""Which files of a folder are images: found recursively, suffixes in any case, symlinks followed.

- Suffixes (case-insensitive): ``IMAGE_EXTENSIONS``. Other files (``notes.txt``, ``Thumbs.db``)
  are skipped, and counted so that the data summary can say so.
- Hidden entries (``.DS_Store``, macOS ``._x.jpg`` AppleDouble files, ``.cache/``) are never images.
- Symbolic links are followed, to files and to folders (each real folder is walked once, so a
  link loop ends); a link whose target is missing is an error naming it, not a silent gap.
- Folders inrkit wrote are not data: a run directory (its ``config.yaml`` is a run config) or an
  output folder (it holds inrkit's ``.inrkit-outputs.json`` record), e.g. ``runs/`` or
  ``inrkit-show/`` made inside the data folder because it was the working directory. Their
  samples would otherwise join the training set on the next ``--resume``.
- The order is the sorted relative paths: the same on every machine, whatever the file system lists.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from inrkit.errors import DataError

from ..common import walk_data

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif")


@dataclass
class Found:
    """What :func:`find_images` found: the images, the other files' suffixes, inrkit's own folders."""

    files: list[Path] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    own: list[Path] = field(default_factory=list)

    def __iadd__(self, other: "Found") -> "Found":
        self.files += other.files
        self.skipped += other.skipped
        self.own += other.own
        return self


def find_images(folder: Path, exts=IMAGE_EXTENSIONS) -> Found:
    """The image files under ``folder`` (sorted by relative path), and what was passed over."""
    folder = Path(folder)
    exts = {e.lower() for e in exts}
    out = Found()
    for here, _, filenames in walk_data(folder, out.own):
        for name in filenames:
            path = here / name
            suffix = path.suffix.lower()
            if suffix not in exts:
                out.skipped[suffix or "(no suffix)"] += 1
            elif path.is_symlink() and not path.exists():
                raise DataError(f"{path}: a symbolic link to {os.readlink(path)}, which does not exist")
            elif path.is_file():
                out.files.append(path)
    out.files.sort(key=lambda p: p.relative_to(folder).as_posix())
    return out


def passed_over(found: Found, root: Path) -> str:
    """``2 files that are not images (.txt, .db) and inrkit's own folder runs/x``, or ''."""
    parts = [skipped_text(found.skipped)] if found.skipped else []
    if found.own:
        names = ", ".join(p.relative_to(root).as_posix() for p in found.own[:3]) + (", ..." if len(found.own) > 3 else "")
        parts.append(f"inrkit's own folder{'s' * (len(found.own) != 1)} {names} (a run, output folder or prepared store)")
    return " and ".join(parts)


def skipped_text(skipped: Counter) -> str:
    """``3 files that are not images (.txt, .db)``, or '' when none was skipped."""
    n = sum(skipped.values())
    if not n:
        return ""
    ordered = sorted(skipped, key=lambda s: (-skipped[s], s))  # the commonest first, ties by name
    kinds = ", ".join(ordered[:5]) + (", ..." if len(ordered) > 5 else "")
    what = "1 file that is not an image" if n == 1 else f"{n} files that are not images"
    return f"{what} ({kinds})"


def no_images_error(folder: Path, exts, found: Found) -> DataError:
    other = passed_over(found, folder)
    found = f"; it holds only {other}" if other else ""
    return DataError(f"{folder}: no images ({', '.join(sorted(exts))}; suffixes in any case) found in this folder{found}")

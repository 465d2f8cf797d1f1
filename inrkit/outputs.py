"""Where a command writes what the user asked for, and the rule it follows: inrkit replaces only
what inrkit wrote.

Every command that writes into a place the user names (``--out FOLDER``, ``--out FILE``,
``--json FILE``, and the default folders inside a run) writes through :func:`output_folder` or
:func:`output_file`:

- the writers (the domain's renderers, a plugin's, JSON, NetCDF, zarr...) write into a hidden
  staging folder inside the output folder (``.inrkit-partial-*``), never onto the user's names;
- when they are done, each name they made is *published*: a name that does not exist yet is
  added (nothing of the user's is touched); a name that exists is replaced only if the folder's
  record (``.inrkit-outputs.json``) lists it with the fingerprint it has now, i.e. inrkit wrote it
  and nobody changed it since. Otherwise nothing at all is published and the command stops with
  one line (``refusing to replace ...``, exit 2);
- on any failure (a full disk, a refusal, an interrupt) the staging folder is removed, and a
  failed write is one line naming the output's own path (``cannot write OUT/x.nc: no space left
  on device``). A folder this call created for the output is removed again if nothing came of it.

The record maps each name inrkit published to its fingerprint: a file's SHA-256, a folder's (a
zarr store) listing of relative names, sizes and modification times. It is written before the
names are moved into place, so a process killed in between leaves files that the record does
not match: they are refused later, never silently replaced. Publishing holds an exclusive lock
on the folder, so two commands writing into one folder do not lose each other's entries.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import OutputError, os_error_reason
from .io import atomic_write_text, remove_staging

MANIFEST = ".inrkit-outputs.json"
STAGING_PREFIX = ".inrkit-partial-"
_FORMAT = "inrkit-outputs"


class Staged:
    """The staging folder of one :func:`output_folder` call: write into :attr:`path`;
    :meth:`final` is where a path written there will be once published."""

    def __init__(self, folder: Path, staging: Path, only: str | None = None):
        self.folder, self.path, self._only = folder, staging, only

    def final(self, path: str | Path) -> Path:
        path = Path(path)
        try:
            return self.folder / path.relative_to(self.path)
        except ValueError:
            return path  # written elsewhere: not this folder's

    def finals(self, paths) -> list[Path]:
        return [self.final(p) for p in paths]


@contextlib.contextmanager
def output_folder(folder: str | Path, _only: str | None = None) -> Iterator[Staged]:
    """Stage what the body writes into ``folder`` and publish it on success (see the module).
    Hidden names the writers leave in the staging folder (their temporaries) are not published."""
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder}: exists and is not a folder (choose another --out)")
    made = _missing_ancestors(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=folder, prefix=STAGING_PREFIX))
    except OSError as err:
        _remove_empty(made)
        raise OutputError.cannot_write(folder / _only if _only else folder, err) from None
    staged = Staged(folder, staging, _only)
    done = False
    try:
        try:
            yield staged
        except OutputError as err:
            if err.path is None or staged.final(err.path) == Path(err.path):
                raise
            raise OutputError.cannot_write(_named(staged, err.path), err.reason or "write failed") from None
        except OSError as err:
            where = _named(staged, err.filename)
            raise OutputError.cannot_write(where, err) from None
        _publish(folder, staging, _only)
        done = True
    finally:
        remove_staging(staging)
        if not done:
            _remove_empty(made)


@contextlib.contextmanager
def output_file(path: str | Path) -> Iterator[Path]:
    """One output the user named (a PNG, a JSON table, an HTML page, a zarr store): yield the
    temporary path to write it to; it replaces ``path`` on success only if inrkit wrote ``path``.
    A refusal comes before the body runs, so no work is wasted on it."""
    path = Path(path).expanduser()
    check_replaceable(path)
    with output_folder(path.parent, _only=path.name) as staged:
        yield staged.path / path.name


def refuse_inside_data(out: str | Path, data: str | Path | None) -> None:
    """The one-line refusal when ``out`` lies in the data folder ``data`` (a folder of files or a
    zarr store): inrkit writes nothing into a user's data. A data *file*'s own folder is not
    refused (a NetCDF file often sits in the project's folder); nor is built-in data (None)."""
    if data is None:
        return
    folder = Path(data).expanduser()
    if not folder.is_dir():
        return
    where, root = Path(out).expanduser().resolve(), folder.resolve()
    if where == root or where.is_relative_to(root):
        raise OutputError(f"{out}: lies inside the data folder {data}, and inrkit writes nothing into a data"
                          " folder (choose --out elsewhere, or run from another folder)")


def check_replaceable(path: str | Path) -> bool:
    """Whether ``path`` exists; raises the one-line refusal when it exists and inrkit may not replace it."""
    path = Path(path).expanduser()
    if not os.path.lexists(path):
        return False
    if not _recorded(path, _read_record(path.parent)):
        raise _refusal(path)
    return True


def check_stem(folder: str | Path, stem: str) -> None:
    """Before the work: refuse at once if ``folder`` holds a name of the user's that outputs named
    ``stem`` (``stem.png``, ``stem-pixels.png``, ``stem_000.ply``...) would replace. Publishing
    checks again; this only saves the work a refusal would waste."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        return
    record = None
    for name in sorted(os.listdir(folder)):
        if name == stem or name.startswith((f"{stem}.", f"{stem}-", f"{stem}_")):
            record = _read_record(folder) if record is None else record
            if not _recorded(folder / name, record):
                raise _refusal(folder / name)


# -- publishing ------------------------------------------------------------------------------
def _publish(folder: Path, staging: Path, only: str | None) -> None:
    made = os.listdir(staging)
    names = ([only] if only in made else []) if only is not None else sorted(n for n in made if not n.startswith("."))
    for name in names:
        if name == MANIFEST or name.startswith(STAGING_PREFIX):
            raise OutputError(f"cannot write {folder / name}: the name is inrkit's own record")
    with _locked(folder):
        record = _read_record(folder)
        for name in names:
            target = folder / name
            if os.path.lexists(target) and not _recorded(target, record):
                raise _refusal(target)
        kept = {n: fp for n, fp in record.items() if os.path.lexists(folder / n)}
        kept.update({name: _fingerprint(staging / name) for name in names})
        atomic_write_text(folder / MANIFEST, json.dumps({"format": _FORMAT, "files": kept}, indent=1) + "\n")
        try:
            for name in names:
                _move(staging / name, folder / name, staging)
        except OSError as err:
            raise OutputError.cannot_write(folder / name, err) from None


def _move(src: Path, target: Path, staging: Path) -> None:
    if src.is_dir() or (target.is_dir() and not target.is_symlink()):
        if os.path.lexists(target):  # a store: the old one goes once the new one is in place
            os.replace(target, staging / f".old-{target.name}")
    os.replace(src, target)


def _refusal(path: Path) -> OutputError:
    return OutputError(f"refusing to replace {path}: inrkit did not write it, or it changed since"
                       " (choose another output, or move it away)", path=None)


def _named(staged: Staged, path) -> Path:
    """The output a failed write belongs to: the one output of :func:`output_file`, else the
    first component of its path in the staging folder (the folder when that says nothing)."""
    if staged._only:
        return staged.folder / staged._only
    if not path:
        return staged.folder
    path = Path(path)
    try:
        rel = path.relative_to(staged.path)
    except ValueError:
        return path
    first = rel.parts[0] if rel.parts else ""
    return staged.folder / first if first and not first.startswith(".") else staged.folder


# -- the record ------------------------------------------------------------------------------
def _read_record(folder: Path) -> dict[str, str]:
    path = folder / MANIFEST
    if not os.path.lexists(path):
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(doc, dict) and doc.get("format") == _FORMAT and isinstance(doc.get("files"), dict):
            return {str(k): str(v) for k, v in doc["files"].items()}
    except (OSError, ValueError):
        pass
    raise OutputError(f"refusing to replace {path}: it is not inrkit's record of what it wrote there"
                      " (choose another output, or move it away)")


def _recorded(path: Path, record: dict[str, str]) -> bool:
    """Whether the record lists ``path`` as it is now (only then is it read to compare)."""
    return path.name in record and _fingerprint(path) == record[path.name]


def _fingerprint(path: Path) -> str:
    if path.is_symlink():
        return "symlink:" + os.readlink(path)  # inrkit writes none: never in the record
    if path.is_dir():
        h = hashlib.sha256()
        for p in sorted(path.rglob("*")):
            if p.is_file() and not p.is_symlink():
                st = p.stat()
                h.update(f"{p.relative_to(path).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return "tree:" + h.hexdigest()
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError as err:
        raise OutputError(f"cannot read {path}: {os_error_reason(err)}") from None
    return "sha256:" + h.hexdigest()


@contextlib.contextmanager
def _locked(folder: Path):
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _missing_ancestors(folder: Path) -> list[Path]:
    """The folders ``mkdir(parents=True)`` would create, deepest first."""
    made = []
    p = folder
    while not os.path.lexists(p) and p != p.parent:
        made.append(p)
        p = p.parent
    return made


def _remove_empty(made: list[Path]) -> None:
    for p in made:
        try:
            p.rmdir()
        except OSError:
            return

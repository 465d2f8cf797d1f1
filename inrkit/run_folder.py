"""A run folder's files and who may write there: the names a run writes at the top of its folder,
whether a folder is a run, and claiming one to train in (refusing to clobber what is not a run;
``--overwrite`` removes only what runs write, under the run's lock). :mod:`inrkit.runs` builds on it.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

from .config import load_yaml
from .errors import CheckpointError, ConfigError, os_error_message
from .outputs import MANIFEST, STAGING_PREFIX
from .runlock import LOCK_FILE, RunLock

CONFIG_FILE = "config.yaml"
RUN_INFO_FILE = "run.json"
WEIGHTS_FILE = "model.safetensors"
SUMMARY_FILE = "summary.json"


def is_run_dir(path: str | Path) -> bool:
    return (Path(path) / CONFIG_FILE).is_file()


# What runs write at the top of their folder (the core's files, the model's, the commands' default
# output folders): ``--overwrite`` removes these and keeps anything else, with a warning.
RUN_ENTRIES = frozenset({
    CONFIG_FILE, RUN_INFO_FILE, WEIGHTS_FILE, SUMMARY_FILE, "metrics.jsonl", "checkpoints", "samples",
    "reconstructions", "tensorboard", MANIFEST,
    "eval.json", "report.html", "reconstruct.json", "compare_run.json", "source_decoder.safetensors",
    "inpaint", "complete", "reconstruct",
})


def written_by_a_run(config_file: Path) -> bool:
    """Whether ``config_file`` is a run's config as inrkit writes it (a mapping with its schema
    version), not any file of that name."""
    try:
        data = load_yaml(config_file)
    except Exception:  # unreadable, not YAML, not UTF-8: not one inrkit wrote as it is now
        return False
    return isinstance(data, dict) and "schema_version" in data


def written_by_inrkit(folder: Path) -> bool:
    """A run folder or an output folder of inrkit's (a data folder's walk passes over these)."""
    folder = Path(folder)
    return (folder / MANIFEST).is_file() or ((folder / CONFIG_FILE).is_file() and written_by_a_run(folder / CONFIG_FILE))


def _run_entry(entry: Path) -> bool:
    return entry.name in RUN_ENTRIES or entry.name == LOCK_FILE or entry.name.startswith(STAGING_PREFIX)


def foreign_entries(path: Path) -> list[Path]:
    """The entries at the top of run folder ``path`` that no run writes (a user's notes, data)."""
    return [e for e in sorted(path.iterdir()) if not _run_entry(e)]


def clear_run(path: Path) -> list[Path]:
    """Remove what a run writes at the top of ``path`` (RUN_ENTRIES; never the lock); return what
    stays: entries inrkit does not write there, which ``--overwrite`` does not delete."""
    for entry in sorted(path.iterdir()):
        if _run_entry(entry) and entry.name != LOCK_FILE:
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    return foreign_entries(path)


def prepare_run_dir(path: str | Path, *, resume: bool = False, overwrite: bool = False, is_main: bool = True) -> Path:
    """Create (or reopen, with ``resume``) a run directory; never clobber one silently.

    An existing non-empty directory is refused unless ``resume`` (continue it) or ``overwrite``
    (replace it); ``overwrite`` deletes only directories that are inrkit runs.
    """
    path = Path(path).expanduser()
    if is_main:
        claim_run_dir(path, resume=resume, overwrite=overwrite).release()
    return path


def claim_run_dir(path: str | Path, *, resume: bool = False, overwrite: bool = False) -> RunLock:
    """:func:`prepare_run_dir` for the process that will train there: the directory is checked,
    then locked (a second trainer is refused, naming the holder's pid), then, with ``overwrite``,
    emptied. The caller releases the lock when it is done."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"run directory path is a file: {path}")
    exists = path.is_dir() and any(p.name != LOCK_FILE for p in path.iterdir())
    if exists and resume:
        if not is_run_dir(path):
            raise CheckpointError(f"cannot resume {path}: it is not an inrkit run (no {CONFIG_FILE})")
    elif exists and overwrite:
        if not is_run_dir(path):
            raise ConfigError(f"refusing to overwrite {path}: it is not an inrkit run (no {CONFIG_FILE})")
        if not written_by_a_run(path / CONFIG_FILE):
            raise ConfigError(f"refusing to overwrite {path}: its {CONFIG_FILE} is not a run config inrkit wrote"
                              " (no schema_version), so the folder is not an inrkit run")
    elif exists:
        raise ConfigError(f"run directory already exists: {path} (pass --resume to continue it or --overwrite to replace it)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create the run directory {os_error_message(err, path)}") from None
    lock = RunLock.acquire(path)
    if exists and overwrite:
        kept = clear_run(path)  # the lock stays held on the same file
        if kept:
            print(f"warning: --overwrite kept {len(kept)} entr{'y' if len(kept) == 1 else 'ies'} in {path} that no run"
                  f" writes: {', '.join(k.name for k in kept[:5])}" + (" ..." if len(kept) > 5 else ""), file=sys.stderr)
    return lock

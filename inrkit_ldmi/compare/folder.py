"""A comparison's output folder: its files, creating or reopening it, and the runs ``--resume`` reuses."""
from __future__ import annotations

import fnmatch
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from inrkit.errors import CheckpointError, ConfigError
from inrkit.io import read_json
from inrkit.run_folder import foreign_entries
from inrkit.runs import read_run_config

PLAN_FILE, RESULT_FILE, MARKDOWN_FILE, SCALING_FILE = "compare_plan.json", "compare.json", "compare.md", "scaling.png"
RUN_RECORD_FILE = "compare_run.json"
DECODE_FILE = "{name}-decode.json"  # per point and hypernetwork


def prepare_out(out: Path, resume: bool, overwrite: bool) -> None:
    """Create ``out``, or reopen it (``resume``) or replace it (``overwrite``) if it is a comparison."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file")
    if out.is_dir() and any(out.iterdir()):
        is_compare = (out / PLAN_FILE).exists() or (out / RESULT_FILE).exists()
        if resume:
            if not is_compare:
                raise ConfigError(f"cannot resume {out}: it holds no {PLAN_FILE}")
        elif overwrite:
            if not is_compare:
                raise ConfigError(f"refusing to overwrite {out}: it is not an inrkit comparison (no {PLAN_FILE})")
            kept = clear_comparison(out)
            if kept:
                print(f"warning: --overwrite kept {len(kept)} entr{'y' if len(kept) == 1 else 'ies'} that no comparison"
                      f" writes: {', '.join(str(k.relative_to(out)) for k in kept[:5])}"
                      + (" ..." if len(kept) > 5 else ""), file=sys.stderr)
        else:
            raise ConfigError(f"{out} already exists (pass --resume to reuse its finished runs or --overwrite to replace it)")
    out.mkdir(parents=True, exist_ok=True)


# What a comparison writes (besides its run folders): the names it gives, and the patterns of the
# per-point and per-run files (decode timings, the --jobs workers' logs and hand-over files).
COMPARE_FILES = (PLAN_FILE, RESULT_FILE, MARKDOWN_FILE, SCALING_FILE)
RUN_NAME = re.compile(r"^(stage1|[\w.]+-seed\d+)$")
RUN_SIDE_FILE = re.compile(r"^[\w.]+-seed\d+\.(log|job\.json|result\.json)$")
RUN_MARKS = ("run.json", "config.yaml", RUN_RECORD_FILE)


def written_by_compare(path: Path, top: bool) -> bool:
    """A run folder or a per-run/per-point file anywhere; the report's files at the top only."""
    name = path.name
    if path.is_dir():
        return bool(RUN_NAME.match(name)) and any((path / mark).is_file() for mark in RUN_MARKS)
    if fnmatch.fnmatch(name, DECODE_FILE.format(name="*")) or RUN_SIDE_FILE.match(name):
        return True
    return top and (name in COMPARE_FILES or fnmatch.fnmatch(name, "reconstructions*.png"))


def clear_comparison(folder: Path, top: bool = True) -> list[Path]:
    """Remove what a comparison wrote under ``folder`` (its files and run folders, and point folders
    left empty); return what it did not write, which stays (``--overwrite`` deletes nothing else)."""
    kept: list[Path] = []
    for entry in sorted(folder.iterdir()):
        if entry.is_symlink():
            kept.append(entry)
        elif written_by_compare(entry, top) and entry.is_dir():
            # a run: removed whole, unless something no run writes was put in it; then it stays as
            # it is (its run's files are replaced when the comparison trains that run again)
            added = foreign_entries(entry)
            if added:
                kept += added
            else:
                shutil.rmtree(entry)
        elif written_by_compare(entry, top):
            entry.unlink()
        elif entry.is_dir():  # a sweep point's folder, or someone else's
            inner = clear_comparison(entry, top=False)
            if inner:
                kept += inner
            elif not any(entry.iterdir()):
                entry.rmdir()
        else:
            kept.append(entry)
    return kept


def reusable(run_dir: Path, config: dict[str, Any]) -> dict[str, Any] | None:
    """The record of a finished run of exactly ``config`` in ``run_dir``, or None."""
    record_file = run_dir / RUN_RECORD_FILE
    if not record_file.exists():
        return None
    try:
        if read_run_config(run_dir) != config:
            return None
        return read_json(record_file)
    except CheckpointError:
        return None

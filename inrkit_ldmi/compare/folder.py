"""A comparison's output folder: its files, creating or reopening it, and the runs ``--resume`` reuses."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from inrkit.errors import CheckpointError, ConfigError
from inrkit.io import read_json
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
            shutil.rmtree(out)
        else:
            raise ConfigError(f"{out} already exists (pass --resume to reuse its finished runs or --overwrite to replace it)")
    out.mkdir(parents=True, exist_ok=True)


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

"""One worker of a parallel comparison (:mod:`.parallel`): ``python -m inrkit_ldmi.compare.worker JOB.json``
trains one run, prunes it and writes its record, exactly as the sequential loop does."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from inrkit.errors import CheckpointError, ConfigError, DataError
from inrkit.io import read_json, write_json

from .execute import prune, train_one
from .folder import RUN_RECORD_FILE
from .parallel import BAD_INPUT, RESULT_SUFFIX, side_file


def run_one(job: dict[str, Any]) -> None:
    """One worker's job: train, prune and write the record (what the sequential loop does)."""
    run_dir, out = Path(job["run_dir"]), Path(job["out"])
    record = train_one(job["config"], run_dir, overwrite=run_dir.exists())
    record["run_dir"] = str(run_dir.relative_to(out))
    record["jobs_at_once"] = job["n_parallel"]
    if record["status"] == "ok":
        prune(run_dir, job["keep"])
    if run_dir.exists():  # as the sequential loop: the record beside the run, for --resume
        write_json(run_dir / RUN_RECORD_FILE, record)
    write_json(side_file(run_dir, RESULT_SUFFIX), record)  # for the parent (a point not run has no folder)


def main(argv: list[str]) -> int:
    try:
        run_one(read_json(Path(argv[0])))
    except (ConfigError, DataError, CheckpointError) as err:
        print(f"error: {err}", flush=True)
        return BAD_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

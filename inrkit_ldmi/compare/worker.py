"""One worker of a parallel comparison (:mod:`.parallel`): ``python -m inrkit_ldmi.compare.worker JOB.json``
trains one run, prunes it and writes its record, exactly as the sequential loop does."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from inrkit.errors import CheckpointError, ConfigError, DataError
from inrkit.io import read_json, write_json

from .execute import record_run
from .parallel import BAD_INPUT, RESULT_SUFFIX, side_file


def run_one(job: dict[str, Any]) -> None:
    """One worker's job: what the sequential loop does, then the record handed to the parent."""
    run_dir = Path(job["run_dir"])
    record = record_run(job["config"], run_dir, Path(job["out"]), job["keep"], jobs_at_once=job["n_parallel"])
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

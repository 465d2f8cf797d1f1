"""Several jobs of a comparison at once on one device (``--jobs N``): each job trains in its own
process, so N runs share the device alike.

Each worker is ``python -m inrkit_ldmi.compare.parallel JOB.json``: it trains one run with
:func:`.execute.train_one`, prunes it as ``--keep`` says and writes the run's record, exactly as a
sequential comparison does; its output goes to ``<run>.log`` beside the run directory. The parent
starts at most N workers, waits for them, then reads their records; decode timing is measured
afterwards in the parent, alone on the device.

Why processes: the runs are Python-bound (kernel launches), so N processes fill a GPU that one
run leaves idle; the comparison stays fair because every run of it shares the device the same way
(the report says how many ran at once).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from inrkit.errors import ConfigError, InrkitError
from inrkit.io import read_json, write_json

from .folder import RUN_RECORD_FILE

JOB_SUFFIX, RESULT_SUFFIX, LOG_SUFFIX = ".job.json", ".result.json", ".log"
BAD_INPUT = 2  # the worker's exit code for bad input (ConfigError, DataError, CheckpointError): re-raised here


def worker_env(jobs: int) -> dict[str, str]:
    """The parent's environment, with the CPU's threads split between the workers (unless set)."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // jobs)))
    return env


def side_file(run_dir: Path, suffix: str) -> Path:
    return run_dir.with_name(run_dir.name + suffix)


def run_jobs(jobs: list[dict[str, Any]], n_parallel: int, log: Callable[[str], None],
             poll_s: float = 0.5) -> dict[str, dict[str, Any]]:
    """Train ``jobs`` (dicts with config, run_dir, out, keep, where) with at most ``n_parallel`` at once;
    returns each job's record by its run_dir.

    A worker that failed on bad input or crashed stops the comparison with its message once the
    running ones have ended (the finished runs keep their records, so ``--resume`` goes on)."""
    env = worker_env(n_parallel)
    pending, running, failures, records = list(jobs), [], [], {}
    while pending or running:
        while pending and len(running) < n_parallel and not failures:
            job = pending.pop(0)
            run_dir = Path(job["run_dir"])
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            job_file, log_file = side_file(run_dir, JOB_SUFFIX), side_file(run_dir, LOG_SUFFIX)
            write_json(job_file, {**job, "n_parallel": n_parallel})
            with open(log_file, "w", encoding="utf-8") as fh:
                proc = subprocess.Popen([sys.executable, "-m", __name__, str(job_file)], stdout=fh,
                                        stderr=subprocess.STDOUT, env=env)
            running.append((proc, job, job_file, log_file))
            log(f"{job['where']}: training into {run_dir} (worker pid {proc.pid}, log {log_file.name})")
        time.sleep(poll_s)
        for item in list(running):
            proc, job, job_file, log_file = item
            code = proc.poll()
            if code is None:
                continue
            running.remove(item)
            job_file.unlink(missing_ok=True)
            result = side_file(Path(job["run_dir"]), RESULT_SUFFIX)
            if code == 0 and result.exists():
                records[job["run_dir"]] = record = read_json(result)
                result.unlink()
                log(f"{job['where']}: {record['status']}" + (f" ({record['error']})" if record.get("error") else ""))
            else:
                failures.append((code, job, log_file))
        if failures and not running:
            break
    if failures:
        code, job, log_file = failures[0]
        lines = [line for line in log_file.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
        last = lines[-1] if lines else f"exit code {code}"
        err = ConfigError if code == BAD_INPUT else InrkitError
        raise err(f"{job['where']}: {last} (worker log {log_file})")
    return records


def run_one(job: dict[str, Any]) -> None:
    """One worker's job: train, prune and write the record (what the sequential loop does)."""
    from .execute import prune, train_one

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
    from inrkit.errors import CheckpointError, DataError

    try:
        run_one(read_json(Path(argv[0])))
    except (ConfigError, DataError, CheckpointError) as err:
        print(f"error: {err}", flush=True)
        return BAD_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Several jobs of a comparison at once on one device (``--jobs N``): each job trains in its own
process, so N runs share the device alike.

Each worker is ``python -m inrkit_ldmi.compare.worker JOB.json``: it trains one run with
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
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from inrkit.errors import ConfigError
from inrkit.io import read_json, write_json


JOB_SUFFIX, RESULT_SUFFIX, LOG_SUFFIX = ".job.json", ".result.json", ".log"
BAD_INPUT = 2  # the worker's exit code for bad input (ConfigError, DataError, CheckpointError): re-raised here


def worker_env(jobs: int, cache_dir: Path) -> dict[str, str]:
    """The parent's environment, with the CPU's threads split between the workers (unless set), a
    traceback on a hard crash, and a kernel cache of the worker's own (workers that JIT-compile
    the same Triton kernels at the same moment do not share half-written cache files)."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // jobs)))
    env["PYTHONFAULTHANDLER"] = "1"
    env["TRITON_CACHE_DIR"] = str(cache_dir)
    return env


def exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def side_file(run_dir: Path, suffix: str) -> Path:
    return run_dir.with_name(run_dir.name + suffix)


def run_jobs(jobs: list[dict[str, Any]], n_parallel: int, log: Callable[[str], None],
             poll_s: float = 0.5) -> dict[str, dict[str, Any]]:
    """Train ``jobs`` (dicts with config, run_dir, out, keep, where) with at most ``n_parallel`` at once;
    returns each job's record by its run_dir.

    A worker that failed on bad input stops the comparison with its message once the running ones
    have ended (the finished runs keep their records, so ``--resume`` goes on); one that crashed
    is recorded as ``failed`` with its exit status and log, and the others go on."""
    pending, running, failures, records = list(jobs), [], [], {}
    caches = Path(tempfile.mkdtemp(prefix="inrkit-compare-kernels-"))
    while pending or running:
        while pending and len(running) < n_parallel and not failures:
            job = pending.pop(0)
            run_dir = Path(job["run_dir"])
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            job_file, log_file = side_file(run_dir, JOB_SUFFIX), side_file(run_dir, LOG_SUFFIX)
            write_json(job_file, {**job, "n_parallel": n_parallel})
            env = worker_env(n_parallel, caches / run_dir.name)
            with open(log_file, "w", encoding="utf-8") as fh:
                proc = subprocess.Popen([sys.executable, "-m", "inrkit_ldmi.compare.worker", str(job_file)], stdout=fh,
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
            elif code == BAD_INPUT:
                failures.append((job, log_file))
                continue
            else:
                records[job["run_dir"]] = record = {
                    "seed": job["config"]["train"]["seed"], "status": "failed", "jobs_at_once": n_parallel,
                    "run_dir": str(Path(job["run_dir"]).relative_to(job["out"])),
                    "error": f"the worker crashed ({exit_text(code)}): {last_line(log_file)} (log {log_file.name})"}
            log(f"{job['where']}: {record['status']}" + (f" ({record['error']})" if record.get("error") else ""))
        if failures and not running:
            break
    shutil.rmtree(caches, ignore_errors=True)
    if failures:
        job, log_file = failures[0]
        raise ConfigError(f"{job['where']}: {last_line(log_file)} (worker log {log_file})")
    return records


def last_line(log_file: Path) -> str:
    """The last line of a worker's log that is not a warning (its error, or what it last said)."""
    lines = [line.strip() for line in log_file.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    useful = [line for line in lines if "Warning:" not in line] or lines
    return useful[-1][:300] if useful else "no output"

"""A fair comparison of hypernetworks: the same LDMI stage 1, trained once per hypernetwork.

One base run config is built (preset ← config file ← ``--data`` ← ``--set`` ← ``--inr`` ← the
sweep point); each hypernetwork's config is that base with ``model.hypernet`` replaced and
nothing else, which :func:`compare` checks before it trains anything. Every run of the same seed
also starts from the same encoder initialisation and sees the same batches, so the measured
differences belong to the hypernetwork.

Per hypernetwork and sweep point it records the parameter counts, held-out reconstruction
metrics (mean ± std over seeds), training throughput after warm-up, training peak memory (CUDA
only: on CPU there are no allocator statistics, so it is reported as unavailable), and the
decode time of ``inrkit.scale.scale_report``. A run that runs out of memory is recorded with
status ``oom`` and the comparison goes on.

::

    out/
      compare_plan.json     the settings and every run's resolved config (written first)
      compare.json          the results; compare.md the same as markdown tables
      reconstructions[-<point>].png   held-out targets and each hypernetwork's reconstructions
      scaling.png           (sweeps) parameters and peak memory against INR size, log-log
      [<point>/]<hypernet>-seed<k>/   a normal run directory (``inrkit evaluate`` accepts it)
      [<point>/]<hypernet>-seed<k>/compare_run.json   that run's numbers, written when it ends
      [<point>/]<hypernet>-decode.json   the decode timing, written when its seeds are done

A comparison cut off part-way keeps those records: ``--resume`` reuses them, and
``benchmarks/compare_partial.py`` writes a report from them alone.

The package: :mod:`.plan` (sweep points, overrides, the axis of comparison, the fairness check),
:mod:`.execute` (one job under memory and disk limits, its budget the trainer's
``train.vae.max_minutes``), :mod:`.aggregate` (mean ± std over seeds), :mod:`.folder` (the output
folder and resume) and :mod:`.report` (markdown, rich tables, pictures); :func:`compare` here
runs them in order.
"""
from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from inrkit.errors import ConfigError
from inrkit.io import write_json
from inrkit.outputs import refuse_inside_data

from .aggregate import aggregate
from .execute import StepClock, decode_timing, environment, is_oom, record_run, seeded_model, sync, train_one
from .parallel import run_jobs
from .folder import DECODE_FILE, PLAN_FILE, RESULT_FILE, RUN_RECORD_FILE, prepare_out, reusable
from .plan import (AXES, HYPERNETS, PRIORS, UNBOUNDED_STEPS, Axis, check_fair, get_axis, hypernet_spec, parse_sweep,
                   plan_configs, resolved, seed_list, slug)
from .report import write_reports

KEEP = ("all", "weights", "logs")

__all__ = ["AXES", "Axis", "DECODE_FILE", "HYPERNETS", "PLAN_FILE", "PRIORS", "RESULT_FILE", "RUN_RECORD_FILE",
           "UNBOUNDED_STEPS", "StepClock", "aggregate", "check_fair", "compare", "environment",
           "hypernet_spec", "is_oom", "parse_sweep", "plan_configs", "seeded_model", "slug", "sync", "train_one"]


def compare(
    hypernets: Sequence[str] | str = ("hd", "mlp"),
    modality: str | None = None,
    data: str | Path | None = None,
    preset: str | None = None,
    inr: str | dict[str, Any] | None = None,
    budget_steps: int | None = None,
    budget_minutes: float | None = None,
    seeds: int | Sequence[int] = (0, 1, 2),
    sweep: Any = None,
    out: str | Path = "runs/compare",
    set_overrides: Iterable[str] | None = None,
    device: str | None = None,
    *,
    config_file: str | Path | None = None,
    keep: str = "all",
    resume: bool = False,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
    axis: str | Axis = HYPERNETS,
    jobs: int = 1,
) -> dict[str, Any]:
    """Train LDMI's stage 1 once per hypernetwork, seed and sweep point; write and return the report.

    ``budget_steps`` sets ``train.vae.steps``; ``budget_minutes`` is each run's
    ``train.vae.max_minutes`` (both: whichever comes first; neither: the config's steps). ``seeds``: a count or a list.
    ``sweep``: ``"inr.width=64,128"``, several of them (their product), or ``{key: values}``.
    ``set_overrides``: ``--set`` items; ``hypernet.<name>.<field>=v`` applies to that hypernetwork
    only. ``keep``: ``all``; ``weights`` (drop checkpoints); ``logs`` (drop weights too).
    ``jobs``: runs trained at once on the device, each in its own process (:mod:`.parallel`); all
    of them share it alike, and the report says so. Decode timing is measured afterwards, alone.
    Returns what ``compare.json`` holds.
    """
    log = log or (lambda msg: None)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"--jobs must be a whole number of at least 1, got {jobs!r}")
    if keep not in KEEP:
        raise ConfigError(f"--keep must be one of {', '.join(KEEP)}, got '{keep}'")
    seeds_ = seed_list(seeds)
    points = plan_configs(hypernets, modality, preset, data, inr, budget_steps, budget_minutes, sweep,
                          set_overrides, device, config_file=config_file, axis=axis)
    names = list(points[0]["configs"])
    out = Path(out).expanduser()
    refuse_inside_data(out, data)
    prepare_out(out, resume=resume, overwrite=overwrite)
    settings = {
        "hypernets": names, "modality": points[0]["configs"][names[0]]["model"]["domain"]["name"],
        "preset": preset if preset is not None or config_file is not None else "paper",
        "config_file": None if config_file is None else str(config_file), "data": None if data is None else str(data),
        "inr": inr, "budget_steps": budget_steps, "budget_minutes": budget_minutes, "seeds": seeds_,
        "sweep": [{"key": k, "values": v} for k, v in parse_sweep(sweep, axis)], "set_overrides": list(set_overrides or []),
        "keep": keep, "jobs": jobs, **environment(points[0]["configs"][names[0]]),
    }
    write_json(out / PLAN_FILE, {"settings": settings, "points": points})

    total = len(points) * len(names) * len(seeds_)
    jobs_ = list(plan_jobs(points, names, seeds_, out, total))
    records: dict[str, dict[str, Any]] = {}
    for job in jobs_:
        record = reusable(Path(job["run_dir"]), job["config"]) if resume else None
        if record is not None:
            records[job["run_dir"]] = record
            log(f"{job['where']}: reused {job['run_dir']}")
    if jobs > 1:
        pending = [{**{k: v for k, v in job.items() if k != "point"}, "out": str(out), "keep": keep}
                   for job in jobs_ if job["run_dir"] not in records]
        records.update(run_jobs(pending, jobs, log))
    results = []
    for point in points:
        base_dir = out / slug(point["label"]) if point["label"] else out
        rows = []
        for name in names:
            runs = []
            for job in (j for j in jobs_ if j["point"] is point and j["name"] == name):
                run_dir = Path(job["run_dir"])
                if job["run_dir"] in records:
                    runs.append(records[job["run_dir"]])
                elif runs and runs[-1]["status"] in ("oom", "disk"):
                    # Deterministic sizes: the next seed would run out of memory or disk the same way.
                    runs.append({**runs[-1], "seed": job["seed"], "run_dir": None,
                                 "note": f"not run: seed {runs[-1]['seed']} ended with {runs[-1]['status']}"})
                    log(f"{job['where']}: skipped ({runs[-1]['status']})")
                else:
                    log(f"{job['where']}: training into {run_dir}")
                    record = record_run(job["config"], run_dir, out, keep)
                    log(f"{job['where']}: {record['status']}" + (f" ({record['error']})" if record.get("error") else ""))
                    runs.append(record)
            decode = decode_timing(point["configs"][name]) if any(r["status"] == "ok" for r in runs) else None
            if decode is not None and base_dir.is_dir():  # kept beside the runs: a cut-off comparison still has it
                write_json(base_dir / DECODE_FILE.format(name=slug(name)), decode)
            rows.append(aggregate(name, point["configs"][name]["model"]["hypernet"], runs, decode))
        results.append({"label": point["label"], "overrides": point["overrides"], "results": rows})

    report = {"schema_version": 1, "settings": settings,
              "fairness": {"differ_only_under": get_axis(axis).path, "checked_pairs": len(points) * math.comb(len(names), 2),
                           "same_seeds": seeds_, "same_budget": {"steps": budget_steps, "minutes": budget_minutes}},
              "points": results}
    report["files"] = write_reports(report, out)
    write_json(out / RESULT_FILE, report)
    return report


def plan_jobs(points: list[dict[str, Any]], names: list[str], seeds: list[int], out: Path, total: int):
    """Every run of the comparison in order (point, hypernetwork, seed), with its resolved config."""
    done = 0
    for point in points:
        base_dir = out / slug(point["label"]) if point["label"] else out
        for name in names:
            for seed in seeds:
                done += 1
                config = copy.deepcopy(point["configs"][name])
                config["train"]["seed"] = seed
                yield {"point": point, "name": name, "seed": seed, "config": resolved(config),
                       "run_dir": str(base_dir / f"{slug(name)}-seed{seed}"),
                       "where": f"[{done}/{total}] {name} seed {seed}" + (f" at {point['label']}" if point["label"] else "")}


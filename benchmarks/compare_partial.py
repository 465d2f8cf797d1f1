"""Build compare.json/compare.md/scaling.png from the run records of a comparison that was cut off.

``gpu_compare_modalities.sh`` caps each comparison's wall time; a capped one keeps a
``compare_run.json`` per finished run and a ``{hypernet}-decode.json`` per finished point and
hypernetwork, but never reaches its report. This writes the report from what finished: runs
without a record are listed with status ``not run``. No training, no GPU. (Comparisons run
before the decode files existed show decode time as not measured.)

    python benchmarks/compare_partial.py WORK_DIR [OUT_DIR]
"""
from __future__ import annotations

import copy
import math
import sys
from pathlib import Path

from inrkit.io import read_json, write_json
from inrkit_ldmi.compare import DECODE_FILE, PLAN_FILE, RESULT_FILE, RUN_RECORD_FILE, aggregate, slug
from inrkit_ldmi.compare.report import write_reports


def main(work: Path, out: Path) -> None:
    plan = read_json(work / PLAN_FILE)
    settings, points = plan["settings"], plan["points"]
    results, missing = [], 0
    for point in points:
        base = work / slug(point["label"]) if point["label"] else work
        rows = []
        for name, config in point["configs"].items():
            runs = []
            for seed in settings["seeds"]:
                record = base / f"{slug(name)}-seed{seed}" / RUN_RECORD_FILE
                if record.exists():
                    runs.append(read_json(record))
                else:
                    missing += 1
                    runs.append({"seed": seed, "status": "not run", "run_dir": None,
                                 "note": "the comparison's wall-time cap ended before this run finished"})
            # aggregate() takes parameter counts from the first run: lead with a finished one
            runs.sort(key=lambda r: r["status"] != "ok")
            decode = base / DECODE_FILE.format(name=slug(name))
            decode = read_json(decode) if decode.exists() else None
            rows.append(aggregate(name, copy.deepcopy(config["model"]["hypernet"]), runs, decode))
        results.append({"label": point["label"], "overrides": point["overrides"], "results": rows})
    names = settings["hypernets"]
    report = {"schema_version": 1, "settings": {**settings, "partial": f"{missing} run(s) did not finish"},
              "fairness": {"differ_only_under": "model.hypernet", "checked_pairs": len(points) * math.comb(len(names), 2),
                           "same_seeds": settings["seeds"],
                           "same_budget": {"steps": settings["budget_steps"], "minutes": settings["budget_minutes"]}},
              "points": results}
    out.mkdir(parents=True, exist_ok=True)
    report["files"] = write_reports(report, out)
    write_json(out / RESULT_FILE, report)
    print(f"{out}/compare.json and compare.md from {sum(len(p['results']) for p in results)} rows; {missing} run(s) missing")


if __name__ == "__main__":
    work = Path(sys.argv[1])
    main(work, Path(sys.argv[2]) if len(sys.argv) > 2 else work)

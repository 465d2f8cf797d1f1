"""Aggregating a comparison's runs: one row per part and point, mean ± std over seeds."""
from __future__ import annotations

import math
import statistics
from typing import Any

# Fields of a run record that belong to the model, not the run: reported once per hypernetwork.
PER_MODEL_KEYS = ("hypernet_params", "hypernet_params_total", "inr_params", "inr_per_hypernet_param",
                  "encoder_params", "parameter_report")


def stats(values: list[float | None]) -> dict[str, Any] | None:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return None
    return {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else None,
            "n": len(vals), "per_seed": [None if v is None else float(v) for v in values]}


def aggregate(name: str, spec: dict[str, Any], runs: list[dict[str, Any]], decode: dict[str, Any] | None) -> dict[str, Any]:
    """One hypernetwork at one point: the runs' numbers as mean ± std over seeds."""
    ok = [r for r in runs if r["status"] == "ok"]
    status = "ok" if len(ok) == len(runs) else next(r["status"] for r in runs if r["status"] != "ok")
    first = next((r for r in runs if r.get("hypernet_params") is not None), runs[0])  # a crashed run has no counts
    metric_names: list[str] = []
    for r in ok:
        for k, v in (r.get("heldout") or {}).items():
            if isinstance(v, dict) and k not in metric_names:
                metric_names.append(k)
    metrics = {k: stats([(r.get("heldout") or {}).get(k, {}).get("mean") for r in ok]) for k in metric_names}
    return {
        "hypernet": name,
        "status": status,
        "spec": spec,
        **{k: first.get(k) for k in PER_MODEL_KEYS},
        "n_val": ((ok[0].get("heldout") or {}).get("n_items") if ok else None),
        "metrics": metrics,
        "steps": stats([r.get("steps_reached") for r in ok]),
        "items_per_s": stats([r.get("items_per_s") for r in ok]),
        "peak_memory_mb": stats([r.get("peak_memory_mb") for r in ok]),
        "memory_note": next((r.get("memory_note") for r in runs if r.get("memory_note")), None),
        "decode_ms": (decode or {}).get("decode_ms"),
        "decode_peak_memory_mb": (decode or {}).get("decode_peak_memory_mb"),
        "decode_status": (decode or {}).get("status", "not measured"),
        "runs": [{k: v for k, v in r.items() if k not in PER_MODEL_KEYS} for r in runs],
    }

"""The prior comparison's report: one table for compare.md and the terminal, built from compare.json."""
from __future__ import annotations

from typing import Any

COLUMNS = [
    ("prior params", lambda r: _int(r["prior_params"])),
    ("train items/s", lambda r: _stat(r["train_items_per_s"], 1) if r["train_items_per_s"] else (r.get("train_note") or "n/a")),
    ("sample ms/item (prior)", lambda r: _stat(r["sample_prior_ms_per_item"], 3)),
    ("sample ms/item (+decode)", lambda r: _stat(r["sample_total_ms_per_item"], 3)),
    ("latent NN gen→held", lambda r: _stat(r["quality"]["latent_nn_gen_to_heldout"], 3)),
    ("latent NN held→gen", lambda r: _stat(r["quality"]["latent_nn_heldout_to_gen"], 3)),
    ("latent Fréchet", lambda r: _stat(r["quality"]["latent_frechet"], 3)),
    ("data NN RMSE gen→held", lambda r: _stat(r["quality"]["data_nn_rmse_gen_to_heldout"], 4)),
    ("data NN RMSE held→gen", lambda r: _stat(r["quality"]["data_nn_rmse_heldout_to_gen"], 4)),
    ("FID", lambda r: _stat(r["quality"]["fid"], 2) if r["quality"].get("fid") else "unavailable"),
]


def _int(v) -> str:
    return "n/a" if v is None else f"{int(v):,}"


def _stat(s: dict[str, Any] | None, digits: int) -> str:
    if not s:
        return "n/a"
    return f"{s['mean']:.{digits}f}" + (f" ± {s['std']:.{digits}f}" if s.get("std") is not None else "")


def table_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["prior", "status"] + [name for name, _ in COLUMNS]
    rows = []
    for r in report["results"]:
        rows.append([r["prior"], r["status"]] + ([fmt(r) for _, fmt in COLUMNS] if r["status"] == "ok" else ["—"] * len(COLUMNS)))
    ref = report["reference"]
    as_stat = {k: ({"mean": v} if isinstance(v, (int, float)) else None) for k, v in ref.items()}
    ref_row = {"prior_params": None, "train_items_per_s": None, "train_note": "—", "sample_prior_ms_per_item": None,
               "sample_total_ms_per_item": None, "quality": as_stat}
    rows.append(["reference", "training items"] + [fmt(ref_row) for _, fmt in COLUMNS])
    return header, rows


def markdown(report: dict[str, Any]) -> str:
    s, st = report["settings"], report["stage1"]
    held = {k: v["mean"] for k, v in (st.get("heldout") or {}).items() if isinstance(v, dict)}
    lines = [
        f"# Prior comparison: {', '.join(s['priors'])} on {s['modality']}",
        "",
        f"Preset `{s['preset']}`, data `{s['data'] or 'built-in'}`; stage 1 trained once ({s['stage1_steps']} steps, "
        f"seed {s['stage1_seed']}) and frozen; stage 2 {s['budget_steps'] or 'the config'} steps per prior, seeds {s['seeds']}; "
        f"{report['n_heldout']} held-out items, {report['results'][0]['runs'][0].get('sampling', {}).get('n', s['n_samples'])} "
        f"samples per run ({s['sample_steps']} sampler steps where a prior has steps); device {s.get('gpu') or s['device']}, "
        f"precision {s.get('precision')}, torch {s['torch']}, inrkit {s['inrkit']}.",
        "",
        "The runs differ only under `model.prior` (checked before training). Stage-1 held-out reconstruction: "
        + (", ".join(f"{k} {v:.4g}" for k, v in held.items()) or "n/a") + ".",
        "",
        "Distances (lower is better; mean ± std over seeds): latent NN = mean Euclidean distance to the nearest item "
        "of the other set, in the frozen encoder's latent space (held-out latents are posterior means); latent Fréchet "
        "= Fréchet distance between Gaussians fitted to the generated and held-out latents; data NN RMSE = the same "
        "nearest-neighbour mean in data space, as RMSE over model-space values (unweighted). The reference row uses "
        + report["reference"]["what"] + ". Sampling time: the prior alone, and with decoding to the training grid.",
        "",
    ]
    header, rows = table_rows(report)
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    fid = next((r.get("fid_status") for r in report["results"] if r.get("fid_status")), None)
    if fid:
        lines += ["", f"FID: {fid}."]
    return "\n".join(lines) + "\n"


def rich_table(report: dict[str, Any]):
    from rich.table import Table

    header, rows = table_rows(report)
    table = Table(title=f"priors on {report['settings']['modality']} (one frozen stage 1)")
    for i, col in enumerate(header):
        table.add_column(col, justify="left" if i < 2 else "right")
    for row in rows:
        table.add_row(*row)
    return table

"""``inrkit evaluate RUN``: held-out reconstruction metrics and, where available, sample metrics."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from .app import app


@app.command("evaluate")
def evaluate(
    run: Path = typer.Argument(..., help="A run directory."),
    data: Optional[Path] = typer.Option(None, "--data", help="Evaluate on this data's val split instead of the run's."),
    n_samples: int = typer.Option(0, "--n-samples", min=0, help="Also draw this many samples for sample metrics."),
    fid_features: Optional[Path] = typer.Option(
        None, "--fid-features", help="Images: feature network for FID (TorchScript Inception .pt, or .pt2 exported with a dynamic batch dimension); needs --n-samples; none ships."),
    ddim_steps: int = typer.Option(50, "--ddim-steps", min=1),
    seed: int = typer.Option(0, "--seed"),
    weights: str = typer.Option("final", "--weights", help="final, ema or a checkpoint name."),
    device: Optional[str] = typer.Option(None, "--device"),
    batch_size: int = typer.Option(16, "--batch-size", min=1),
) -> None:
    """Writes RUN/eval.json and prints a table (mean ± std over held-out items)."""
    from inrkit.errors import ConfigError
    from inrkit.io import plain, write_json
    from inrkit.runs import Run

    if fid_features is not None and not n_samples:
        raise ConfigError("--fid-features needs --n-samples N (FID compares N samples with the held-out images)")
    opened = Run.open(run)
    model = opened.load_model(device=device, weights=weights)
    features = None
    if fid_features is not None and n_samples and model.domain.registry_name == "image":
        from modalities.image.fid import load_feature_network

        features = load_feature_network(fid_features)  # a bad file fails here, before sampling
    val = opened.dataset("val", path=data)
    result: dict[str, Any] = {
        "run": str(run),
        "weights": weights,
        "data": {"path": opened.data_path(data), "split": "val", "n_items": len(val)},
        "reconstruction": model.evaluate(val, batch_size=batch_size),
    }
    if n_samples:
        samples = model.sample(n_samples, steps=ddim_steps, seed=seed)
        result["samples"] = {"n": n_samples, "ddim_steps": ddim_steps, "seed": seed,
                             **_sample_metrics(model, samples, val, features)}
    from inrkit_ldmi.hyper_transform import is_hyper_transform_run

    if is_hyper_transform_run(opened.config):
        from inrkit_ldmi.report import hyper_transform_report, print_report

        result["hyper_transform"] = hyper_transform_report(opened, model, dataset=val, steps=ddim_steps, seed=seed,
                                                           batch_size=batch_size)
    write_json(Path(run) / "eval.json", plain(result))
    _print(result, Path(run) / "eval.json")
    if "hyper_transform" in result:
        print_report(result["hyper_transform"])


def _sample_metrics(model, samples, val, fid_features) -> dict[str, Any]:
    if model.domain.registry_name != "image":
        return {"status": f"no sample metrics for the '{model.domain.registry_name}' modality"}
    import torch

    from modalities.image.fid import compute_fid

    real = torch.stack([val[i] for i in range(len(val))])
    return compute_fid(real, samples, fid_features)


def _print(result: dict[str, Any], where: Path) -> None:
    console = Console()
    rec = result["reconstruction"]
    table = Table(title=f"held-out reconstructions ({rec['n_items']} items)")
    table.add_column("metric")
    table.add_column("mean", justify="right")
    table.add_column("std", justify="right")
    for name, v in rec.items():
        if isinstance(v, dict):
            table.add_row(name, _fmt(v.get("mean")), _fmt(v.get("std")))
    console.print(table)
    if "samples" in result:
        s = result["samples"]
        shown = {k: v for k, v in s.items() if k not in ("n", "ddim_steps", "seed")}
        console.print(f"samples ({s['n']}): " + ", ".join(f"{k}: {_fmt(v)}" for k, v in shown.items()))
    console.print(f"written: {where}")


def _fmt(v) -> str:
    if isinstance(v, float):
        return "n/a" if not math.isfinite(v) else f"{v:.4g}"
    return "n/a" if v is None else str(v)

"""``inrkit evaluate RUN``: held-out reconstruction metrics and, where available, sample metrics."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from .app import SEED_MAX, app


@app.command("evaluate", epilog="Example: inrkit evaluate run --n-samples 16 --seed 0")
def evaluate(
    run: Path = typer.Argument(..., help="A run directory."),
    data: Optional[Path] = typer.Option(None, "--data", help="Evaluate on this data's val split instead of the run's."),
    n_samples: int = typer.Option(0, "--n-samples", min=0, help="Also draw this many samples for sample metrics."),
    fid_features: Optional[Path] = typer.Option(
        None, "--fid-features", help="Images: feature network for FID (TorchScript Inception .pt, or .pt2 exported with a dynamic batch dimension); needs --n-samples; none ships."),
    ddim_steps: int = typer.Option(50, "--ddim-steps", min=1),
    seed: int = typer.Option(0, "--seed", min=0, max=SEED_MAX, help="Seed of the samples drawn for --n-samples."),
    weights: str = typer.Option("final", "--weights", help="final, ema or a checkpoint name."),
    device: Optional[str] = typer.Option(None, "--device"),
    batch_size: int = typer.Option(16, "--batch-size", min=1),
    sets: Optional[list[str]] = typer.Option(
        None, "--set", help="A speed setting of the model for this evaluation, e.g. --set model.inr.kernel=torch;"
                            " with --data also how that data is read, e.g. --set data.units=degC (repeatable)."),
) -> None:
    """Writes RUN/eval.json and prints a table (mean ± std over held-out items)."""
    from inrkit_ldmi.evaluate import EVAL_FILE, evaluate_run

    result = evaluate_run(run, data=data, n_samples=n_samples, features=fid_features, ddim_steps=ddim_steps,
                          seed=seed, weights=weights, device=device, batch_size=batch_size, runtime=sets)
    _print(result, Path(run) / EVAL_FILE)
    if "hyper_transform" in result:
        from inrkit_ldmi.report import print_report

        print_report(result["hyper_transform"])


def _print(result: dict[str, Any], where: Path) -> None:
    console = Console()
    rec = result["reconstruction"]
    from inrkit_ldmi.stats import FEW_ITEMS

    n = rec["n_items"]
    table = Table(title=f"held-out reconstructions ({n} item{'s' * (n != 1)})")
    table.add_column("metric")
    table.add_column("mean", justify="right")
    table.add_column("std", justify="right")
    for name, v in rec.items():
        if isinstance(v, dict):
            table.add_row(name, _fmt(v.get("mean")), "n/a (< 2 items)" if v.get("std") is None else _fmt(v["std"]))
    console.print(table)
    if n < FEW_ITEMS:
        console.print(f"note: {n} held-out item{'s' * (n != 1)}: " + (
            "no spread below 2 items" if n < 2 else f"statistics over fewer than {FEW_ITEMS} items are rough"), highlight=False)
    if "samples" in result:
        s = result["samples"]
        shown = {k: v for k, v in s.items() if k not in ("n", "ddim_steps", "seed")}
        console.print(f"samples ({s['n']}): " + ", ".join(f"{k}: {_fmt(v)}" for k, v in shown.items()))
    console.print(f"written: {where}")


def _fmt(v) -> str:
    if isinstance(v, float):
        return "n/a" if not math.isfinite(v) else f"{v:.4g}"
    return "n/a" if v is None else str(v)

"""``inrkit compare``: train LDMI's stage 1 once per hypernetwork on the same data and budget, or
(``--priors``) stage 2 once per prior on one frozen stage 1."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from inrkit.errors import ConfigError

from .app import app


def parse_seeds(text: str) -> int | list[int]:
    """``3`` → seeds 0, 1, 2; ``0,5,7`` → those seeds."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--seeds: expected a count (3) or a list (0,5,7), got '{text}'") from None
    if not values:
        raise ConfigError(f"--seeds: expected a count (3) or a list (0,5,7), got '{text}'")
    return values[0] if len(values) == 1 and "," not in text else values


@app.command("compare", epilog="Example: inrkit compare --hypernets hd,mlp --modality image --preset tiny --budget-steps 200 --seeds 2 --out cmp")
def compare_cmd(
    hypernets: Optional[str] = typer.Option(None, "--hypernets", help="Comma-separated hypernetworks, e.g. hd,mlp,mixture (default hd,mlp)."),
    priors: Optional[str] = typer.Option(None, "--priors", help="Compare priors instead, e.g. gaussian,flow,diffusion: stage 1 once, stage 2 per prior."),
    modality: Optional[str] = typer.Option(None, "--modality", "-m", help="image, sphere or occupancy (the domain)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Your data (folder or file); default: the built-in dataset."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Shipped preset: paper (default) or tiny."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML run config merged over the preset."),
    inr: Optional[str] = typer.Option(None, "--inr", help="INR spec for every run, e.g. 'siren:depth=5,width=256'."),
    budget_steps: Optional[int] = typer.Option(None, "--budget-steps", help="Training steps of every run."),
    budget_minutes: Optional[float] = typer.Option(None, "--budget-minutes", help="Wall-clock minutes of every run."),
    seeds: str = typer.Option("3", "--seeds", help="Number of seeds (3 → 0,1,2) or a list (0,5,7; one seed: 7,)."),
    sweep: Optional[list[str]] = typer.Option(None, "--sweep", help="Field=values, e.g. inr.width=64,128,256 (repeatable: their product)."),
    sets: Optional[list[str]] = typer.Option(None, "--set", help="Override for every run (train.vae.lr=1e-4), or one hypernetwork's (hypernet.mlp.hidden=[256,512])."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default runs/compare-{modality}-{time})."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N."),
    keep: str = typer.Option("all", "--keep", help="What runs keep: all, weights (no checkpoints) or logs (no weights)."),
    resume: bool = typer.Option(False, "--resume", help="Reuse the finished runs of an interrupted comparison."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing comparison folder."),
    n_samples: Optional[int] = typer.Option(None, "--n-samples", help="--priors: samples per run (default: the held-out count)."),
    sample_steps: int = typer.Option(50, "--sample-steps", help="--priors: sampler steps (DDIM) of priors that have steps."),
    fid_features: Optional[Path] = typer.Option(None, "--fid-features", help="--priors on images: feature network for FID (as inrkit evaluate)."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Runs trained at once on the device, each in its own process (they share it alike; the report says so)."),
) -> None:
    """Compare hypernetworks (HD vs MLP baselines): parameters, held-out metrics, speed and memory;
    or, with --priors, latent priors on one frozen stage 1: parameters, speed and sample distances."""
    console = Console(width=180)
    if out is None:
        out = Path("runs") / f"compare-{modality or 'custom'}-{time.strftime('%Y%m%d-%H%M%S')}"
    if priors is not None:
        _compare_priors(console, priors, hypernets, sweep, budget_minutes, keep, jobs, fid_features, modality,
                        dict(data=data, preset=preset, inr=inr, budget_steps=budget_steps, seeds=parse_seeds(seeds), out=out,
                             set_overrides=sets, device=device, config_file=config, n_samples=n_samples,
                             sample_steps=sample_steps, resume=resume, overwrite=overwrite))
        return
    if fid_features is not None or n_samples is not None:
        raise ConfigError("--fid-features and --n-samples belong to --priors (hypernetworks are compared on reconstructions)")
    from inrkit_ldmi.compare import compare
    from inrkit_ldmi.compare.report import rich_tables

    hypernets = "hd,mlp" if hypernets is None else hypernets
    report = compare(hypernets=hypernets, modality=modality, data=data, preset=preset, inr=inr,
                     budget_steps=budget_steps, budget_minutes=budget_minutes, seeds=parse_seeds(seeds), sweep=sweep,
                     out=out, set_overrides=sets, device=device, config_file=config, keep=keep, resume=resume,
                     overwrite=overwrite, jobs=jobs, log=lambda msg: console.print(msg, highlight=False))
    for table in rich_tables(report):
        console.print(table)
    files = report["files"]
    written = [f for f in (files["json"], files["markdown"], files["reconstructions"], files["scaling_plot"]) if f]
    console.print(f"wrote {', '.join(str(out / f) for f in written)}", highlight=False)


def _compare_priors(console, priors, hypernets, sweep, budget_minutes, keep, jobs, fid_features, modality, kwargs) -> None:
    for given, what in ((hypernets, "--hypernets"), (sweep, "--sweep"), (budget_minutes, "--budget-minutes"),
                        (None if keep == "all" else keep, "--keep"), (None if jobs == 1 else jobs, "--jobs")):
        if given:
            raise ConfigError(f"{what} does not go with --priors (priors share one stage 1 and a --budget-steps budget)")
    from inrkit_ldmi.compare_priors import compare_priors
    from inrkit_ldmi.compare_priors_report import rich_table

    report = compare_priors(priors=priors, modality=modality, fid_features=fid_features,
                            log=lambda msg: console.print(msg, highlight=False), **kwargs)
    console.print(rich_table(report))
    out = kwargs["out"]
    console.print(f"wrote {out / report['files']['json']}, {out / report['files']['markdown']}", highlight=False)

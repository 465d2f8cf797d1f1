"""``inrkit train ldmi``: build the run config (preset ← file ← --data ← --set) and train."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from inrkit.errors import ConfigError

from .app import train_app

STAGES = ("all", "vae", "prior")
PARADIGMS = ("full", "hyper-transform")

# The options ``train ldmi`` and ``train ldm`` share, declared once.
MODALITY = typer.Option(None, "--modality", "-m", help="image, sphere or occupancy (the domain).")
DATA = typer.Option(None, "--data", help="Your data (folder or file); default: the built-in dataset.")
CONFIG = typer.Option(None, "--config", help="YAML run config merged over the preset.")
RESUME = typer.Option(False, "--resume", help="Continue a killed run from its newest checkpoints.")
RESUME_OLDER = typer.Option(
    False, "--resume-older",
    help="As --resume, but a corrupt newest checkpoint is set aside (renamed corrupt-...) and the next older intact one used.")
OVERWRITE = typer.Option(False, "--overwrite", help="Replace an existing run directory.")
STAGE = typer.Option("all", "--stage", help="vae, prior or all.")
DEVICES = typer.Option(1, "--devices", min=1, help="Processes (GPUs) on this machine, through torchrun.")
DEVICE = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N (sets train.device).")


def resume_mode(resume: bool, resume_older: bool) -> bool | str:
    """What ``fit(resume=...)`` takes: False, True, or "older" (past corrupt newest checkpoints)."""
    return "older" if resume_older else resume


def check_stage(stage: str) -> None:
    if stage not in STAGES:
        raise ConfigError(f"--stage must be one of {', '.join(STAGES)}, got '{stage}'")


def resolve_recipe(model: str, modality: str | None, preset: str | None, config: Path | None, sets: list[str] | None,
                   data: Path | None, device: str | None):
    """The recipe the train command would use (``inrkit debug config`` prints it)."""
    from inrkit.recipe import Recipe

    overrides = list(sets or [])
    if device is not None:
        overrides.append(f"train.device={device}")
    return Recipe.resolve(model, preset, config, data, overrides, modality=modality)


def default_out(config: dict[str, Any], preset: str | None) -> Path:
    domain = config["model"]["domain"]["name"]
    return Path("runs") / f"{domain}-{preset or 'custom'}-{time.strftime('%Y%m%d-%H%M%S')}"


@train_app.command("ldmi", epilog="Example: inrkit train ldmi --modality sphere --preset tiny --out run")
def train_ldmi(
    modality: Optional[str] = MODALITY,
    data: Optional[Path] = DATA,
    preset: Optional[str] = typer.Option(None, "--preset", help="Shipped preset: paper (default) or tiny."),
    config: Optional[Path] = CONFIG,
    sets: Optional[list[str]] = typer.Option(None, "--set", help="Override, e.g. --set train.vae.steps=100 (repeatable)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory (default runs/{modality}-{preset}-{time})."),
    resume: bool = RESUME,
    resume_older: bool = RESUME_OLDER,
    overwrite: bool = OVERWRITE,
    stage: str = STAGE,
    paradigm: str = typer.Option("full", "--paradigm", help="full (both stages) or hyper-transform."),
    source: Optional[str] = typer.Option(
        None, "--from", help="full: initial weights (a run directory or .safetensors); hyper-transform: the pre-trained LDM."),
    prior_from: Optional[str] = typer.Option(None, "--prior-from", help="hyper-transform: a run whose trained prior is used."),
    devices: int = DEVICES,
    device: Optional[str] = DEVICE,
) -> None:
    """Train LDMI: stage 1 the VAE (encoder + hypernetwork), stage 2 the latent diffusion prior."""
    check_stage(stage)
    resume = resume_mode(resume, resume_older)
    if paradigm not in PARADIGMS:
        raise ConfigError(f"--paradigm must be one of {', '.join(PARADIGMS)}, got '{paradigm}'")
    if preset is None and config is None:
        preset = "paper"
    if paradigm == "hyper-transform":
        _hyper_transform(modality=modality, data=data, preset=preset, config_file=config, overrides=list(sets or []),
                         out=out, resume=resume, overwrite=overwrite, source=source, prior_from=prior_from,
                         devices=devices, device=device, stage=stage)
        return
    if prior_from is not None:
        raise ConfigError("--prior-from belongs to --paradigm hyper-transform")
    recipe = resolve_recipe("ldmi", modality, preset, config, sets, data, device)
    out = out or default_out(recipe.config, preset)
    if devices > 1 and "WORLD_SIZE" not in os.environ:
        _relaunch(devices, modality=modality, data=data, preset=preset, config=config, sets=sets, out=out,
                  resume=resume, overwrite=overwrite, stage=stage, source=source, device=device)
        return

    fit_and_report(recipe.build_model(), out, stage, resume=resume, overwrite=overwrite, source=source)


def fit_and_report(model, out: Path, stage: str, *, resume: bool | str, overwrite: bool, source: str | None) -> None:
    """Train ``model`` into ``out`` (all stages or one) and, on rank 0, print the summary."""
    summary = model.fit(out=out, stages=None if stage == "all" else (stage,), resume=resume, overwrite=overwrite,
                        init_from=source)
    if int(os.environ.get("RANK", "0")) == 0:
        _print_summary(summary, out)


def _hyper_transform(**kwargs) -> None:
    if importlib.util.find_spec("inrkit_ldmi.hyper_transform") is None:
        raise ConfigError("--paradigm hyper-transform is not available in this installation (inrkit_ldmi.hyper_transform is missing)")
    from inrkit_ldmi.hyper_transform import train_hyper_transform

    summary = train_hyper_transform(**kwargs)
    if "stages" in summary and int(os.environ.get("RANK", "0")) == 0:
        _print_summary(summary, Path(summary["run_dir"]))


def _relaunch(devices: int, command: str = "ldmi", **opts) -> None:
    """Run this same ``train <command>`` under torchrun with one process per device; every rank trains, rank 0 writes."""
    args = ["train", command]
    for key, flag in (("modality", "--modality"), ("data", "--data"), ("preset", "--preset"), ("config", "--config"),
                      ("out", "--out"), ("stage", "--stage"), ("source", "--from"), ("device", "--device")):
        if opts.get(key) is not None:
            args += [flag, str(opts[key])]
    for item in opts.get("sets") or []:
        args += ["--set", item]
    if opts.get("resume"):
        args.append("--resume-older" if opts["resume"] == "older" else "--resume")
    if opts.get("overwrite"):
        args.append("--overwrite")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={devices}", "-m", "inrkit_cli.main", *args]
    print("launching: " + " ".join(cmd), file=sys.stderr)
    code = subprocess.call(cmd)
    if code != 0:
        raise typer.Exit(code)


def _print_summary(summary: dict[str, Any], out: Path) -> None:
    console = Console()
    table = Table(title=f"run {out}")
    for col in ("stage", "steps", "trained", "wall s", "items/s", "final loss"):
        table.add_column(col)
    for name, s in summary["stages"].items():
        final = s.get("final") or {}
        loss = final.get("loss")
        table.add_row(name, str(s.get("steps")), str(s.get("trained_steps", "")), str(s.get("wall_time_s", "-")),
                      str(s.get("items_per_s", "-")), "-" if loss is None else f"{loss:.4g}")
    console.print(table)
    from inrkit_ldmi.stats import split_note, stat_text

    if "n_train" in summary:
        console.print(split_note(summary["n_train"], summary.get("n_val", 0)), highlight=False)
    for name, s in summary["stages"].items():
        held = s.get("heldout")
        if held:
            metrics = ", ".join(f"{k} {stat_text(v)}" for k, v in held.items()
                                if isinstance(v, dict) and v.get("mean") is not None)
            console.print(f"held-out reconstructions after {name} ({held.get('n_items')} items): {metrics}", highlight=False)
    if "n_train" in summary:
        console.print(f"data: {summary['n_train']} training items, {summary['n_val']} held out")
    console.print(f"run directory: {out}")

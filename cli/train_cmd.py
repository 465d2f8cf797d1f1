"""``inrkit train ldmi``: build the run config (preset ← file ← --data ← --set) and train."""
from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from inrkit.errors import ConfigError

from .app import train_app
from .launch import is_main_process, needs_launch, relaunch

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
DEVICES = typer.Option(1, "--devices", min=1, help="Processes (GPUs) on this machine (DDP; Ctrl-C or SIGTERM saves a checkpoint).")
DEVICE = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N (sets train.device).")


def resume_mode(resume: bool, resume_older: bool, overwrite: bool = False) -> bool | str:
    """What ``fit(resume=...)`` takes: False, True, or "older" (past corrupt newest checkpoints).
    Continuing and replacing a run at once contradict each other: a ConfigError."""
    if overwrite and (resume or resume_older):
        raise ConfigError(f"--{'resume-older' if resume_older else 'resume'} continues a run and --overwrite replaces it:"
                          " give one of them")
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
    resume = resume_mode(resume, resume_older, overwrite)
    if paradigm not in PARADIGMS:
        raise ConfigError(f"--paradigm must be one of {', '.join(PARADIGMS)}, got '{paradigm}'")
    if preset is None and config is None:
        preset = "paper"
    if paradigm == "hyper-transform":
        _hyper_transform(modality=modality, data=data, preset=preset, config=config, sets=list(sets or []),
                         out=out, resume=resume, overwrite=overwrite, source=source, prior_from=prior_from,
                         devices=devices, device=device, stage=stage)
        return
    if prior_from is not None:
        raise ConfigError("--prior-from belongs to --paradigm hyper-transform")
    recipe = resolve_recipe("ldmi", modality, preset, config, sets, data, device)
    out = out or default_out(recipe.config, preset)
    if needs_launch(devices):
        relaunch(devices, "ldmi", modality=modality, data=data, preset=preset, config=config, sets=sets, out=out,
                 resume=resume, overwrite=overwrite, stage=stage, source=source, device=device)
        return

    fit_and_report(recipe.build_model(), out, stage, resume=resume, overwrite=overwrite, source=source)


def fit_and_report(model, out: Path, stage: str, *, resume: bool | str, overwrite: bool, source: str | None) -> None:
    """Train ``model`` into ``out`` (all stages or one) and, on rank 0, print the summary."""
    summary = model.fit(out=out, stages=None if stage == "all" else (stage,), resume=resume, overwrite=overwrite,
                        init_from=source)
    if is_main_process():
        _print_summary(summary, out)


def _hyper_transform(*, source: str | None, prior_from: str | None, modality: str | None, data: Path | None,
                     preset: str | None, config: Path | None, sets: list[str], device: str | None, out: Path | None,
                     stage: str, resume: bool | str, overwrite: bool, devices: int) -> None:
    """``--paradigm hyper-transform``: the model prepared by the library (its errors come before any
    launch), then trained here or, with ``--devices N``, by one process per device."""
    if importlib.util.find_spec("inrkit_ldmi.hyper_transform") is None:
        raise ConfigError("--paradigm hyper-transform is not available in this installation (inrkit_ldmi.hyper_transform is missing)")
    from inrkit_ldmi.hyper_transform import PARADIGM, fit_hyper_transform, prepare_hyper_transform

    overrides = sets + ([f"train.device={device}"] if device is not None else [])
    model, src = prepare_hyper_transform(source, prior_from=prior_from, modality=modality, preset=preset,
                                         config_file=config, data=data, overrides=overrides)
    out = out or default_out(model.recipe.config, PARADIGM)
    if needs_launch(devices):
        relaunch(devices, "ldmi", paradigm=PARADIGM, source=source, prior_from=prior_from, modality=modality, data=data,
                 preset=preset, config=config, sets=sets, device=device, out=out, stage=stage, resume=resume,
                 overwrite=overwrite)
        return
    summary = fit_hyper_transform(model, src, out, stage=stage, resume=resume, overwrite=overwrite)
    if is_main_process():
        _print_summary(summary, out)


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
    from inrkit.train.fast import speed_text

    speeds: dict[str, list[str]] = {}
    for name, s in summary["stages"].items():
        if s.get("speed"):
            speeds.setdefault(speed_text(s["speed"]), []).append(name)
    for text, names in speeds.items():
        console.print(f"speed settings ({', '.join(names)}): {text}", highlight=False, soft_wrap=True)
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

"""``inrkit train ldm``: a conventional LDM (encoder + conv decoder + prior), LDMI's baseline and the
pre-trained model that ``inrkit train ldmi --paradigm hyper-transform --from RUN`` starts from."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from .app import train_app
from .launch import needs_launch, relaunch
from .train_cmd import (CONFIG, DATA, DEVICE, DEVICES, MODALITY, OVERWRITE, RESUME, RESUME_OLDER, STAGE, check_stage,
                        fit_and_report, resolve_recipe, resume_mode)


@train_app.command("ldm", epilog="Example: inrkit train ldm --modality image --preset tiny --out ldm-run")
def train_ldm(
    modality: Optional[str] = MODALITY,
    data: Optional[Path] = DATA,
    preset: Optional[str] = typer.Option(None, "--preset", help="The LDMI preset whose encoder, prior and training to use: paper (default) or tiny."),
    config: Optional[Path] = CONFIG,
    sets: Optional[list[str]] = typer.Option(None, "--set", help="Override, e.g. --set model.decoder.base_channels=64 (repeatable)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory (default runs/{modality}-ldm-{preset}-{time})."),
    resume: bool = RESUME,
    resume_older: bool = RESUME_OLDER,
    overwrite: bool = OVERWRITE,
    stage: str = STAGE,
    source: Optional[str] = typer.Option(None, "--from", help="Initial weights: a run directory or a .safetensors file."),
    devices: int = DEVICES,
    device: Optional[str] = DEVICE,
) -> None:
    """Train an LDM: stage 1 encoder + conv decoder (eq. 6), stage 2 the latent diffusion prior (eq. 7)."""
    check_stage(stage)
    resume = resume_mode(resume, resume_older, overwrite)
    if preset is None and config is None:
        preset = "paper"
    overrides = list(sets or []) + ([f"train.device={device}"] if device is not None else [])
    recipe = resolve_recipe("ldm", modality, preset, config, overrides, data, None)
    cfg = recipe.config
    out = out or Path("runs") / f"{cfg['model']['domain']['name']}-ldm-{preset or 'custom'}-{time.strftime('%Y%m%d-%H%M%S')}"
    if needs_launch(devices):
        relaunch(devices, "ldm", modality=modality, data=data, preset=preset, config=config, sets=overrides, out=out,
                 resume=resume, overwrite=overwrite, stage=stage, source=source)
        return
    fit_and_report(recipe.build_model(), out, stage, resume=resume, overwrite=overwrite, source=source)

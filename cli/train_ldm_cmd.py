"""``inrkit train ldm``: a conventional LDM (encoder + conv decoder + prior), LDMI's baseline and the
pre-trained model that ``inrkit train ldmi --paradigm hyper-transform --from RUN`` starts from."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import typer

from inrkit.errors import ConfigError

from .app import train_app
from .train_cmd import STAGES, _print_summary


@train_app.command("ldm")
def train_ldm(
    modality: Optional[str] = typer.Option(None, "--modality", "-m", help="image, sphere or occupancy (the domain)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Your data (folder or file); default: the built-in dataset."),
    preset: Optional[str] = typer.Option(None, "--preset", help="The LDMI preset whose encoder, prior and training to use: paper (default) or tiny."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML run config merged over the preset."),
    sets: Optional[list[str]] = typer.Option(None, "--set", help="Override, e.g. --set model.decoder.base_channels=64 (repeatable)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory (default runs/{modality}-ldm-{preset}-{time})."),
    resume: bool = typer.Option(False, "--resume", help="Continue a killed run from its newest checkpoints."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run directory."),
    stage: str = typer.Option("all", "--stage", help="vae, prior or all."),
    source: Optional[str] = typer.Option(None, "--from", help="Initial weights: a run directory or a .safetensors file."),
    devices: int = typer.Option(1, "--devices", min=1, help="Processes (GPUs) on this machine, through torchrun."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N (sets train.device)."),
) -> None:
    """Train an LDM: stage 1 encoder + conv decoder (eq. 6), stage 2 the latent diffusion prior (eq. 7)."""
    from inrkit_ldmi.ldm import LDM, ldm_run_config

    if stage not in STAGES:
        raise ConfigError(f"--stage must be one of {', '.join(STAGES)}, got '{stage}'")
    if preset is None and config is None:
        preset = "paper"
    overrides = list(sets or []) + ([f"train.device={device}"] if device is not None else [])
    cfg = ldm_run_config(modality, preset, overrides, config_file=config, data=data)
    out = out or Path("runs") / f"{cfg['model']['domain']['name']}-ldm-{preset or 'custom'}-{time.strftime('%Y%m%d-%H%M%S')}"
    if devices > 1 and "WORLD_SIZE" not in os.environ:
        args = ["train", "ldm", "--out", str(out), "--stage", stage]
        for flag, value in (("--modality", modality), ("--data", data), ("--preset", preset), ("--config", config),
                            ("--from", source)):
            if value is not None:
                args += [flag, str(value)]
        args += [a for item in overrides for a in ("--set", item)]
        args += [f"--{k}" for k, v in (("resume", resume), ("overwrite", overwrite)) if v]
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={devices}", "-m", "cli.main", *args]
        print("launching: " + " ".join(cmd), file=sys.stderr)
        code = subprocess.call(cmd)
        if code != 0:
            raise typer.Exit(code)
        return
    model = LDM.from_config(cfg)
    summary = model.fit(out=out, stages=None if stage == "all" else (stage,), resume=resume, overwrite=overwrite,
                        init_from=source)
    if int(os.environ.get("RANK", "0")) == 0:
        _print_summary(summary, out)

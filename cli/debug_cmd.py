"""``inrkit debug config``: print the resolved run config that ``inrkit train ldmi`` would use."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
import yaml

from .app import debug_app
from .train_cmd import resolve_recipe


@debug_app.command("config")
def debug_config(
    modality: Optional[str] = typer.Option(None, "--modality", "-m"),
    data: Optional[Path] = typer.Option(None, "--data"),
    preset: Optional[str] = typer.Option(None, "--preset"),
    config: Optional[Path] = typer.Option(None, "--config"),
    sets: Optional[list[str]] = typer.Option(None, "--set"),
    device: Optional[str] = typer.Option(None, "--device"),
    params: bool = typer.Option(False, "--params", help="Also build the model and print its parameter counts."),
) -> None:
    """Resolve preset ← --config ← --data ← --set exactly as training does, and print the YAML."""
    if preset is None and config is None:
        preset = "paper"
    recipe = resolve_recipe("ldmi", modality, preset, config, sets, data, device)
    typer.echo(yaml.safe_dump(recipe.config, sort_keys=False), nl=False)
    if params:
        report = recipe.build_model().parameter_report()
        typer.echo(yaml.safe_dump({"parameters": report}, sort_keys=False), nl=False)

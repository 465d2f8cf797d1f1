"""``inrkit debug config``: print the resolved run config that ``inrkit train ldmi`` would use."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
import yaml

from .app import debug_app
from .train_cmd import resolve_recipe


@debug_app.command("config", epilog="Example: inrkit debug config --modality sphere --preset tiny --set model.hypernet.dim=64")
def debug_config(
    modality: Optional[str] = typer.Option(None, "--modality", "-m"),
    data: Optional[Path] = typer.Option(None, "--data"),
    preset: Optional[str] = typer.Option(None, "--preset"),
    config: Optional[Path] = typer.Option(None, "--config"),
    sets: Optional[list[str]] = typer.Option(None, "--set"),
    device: Optional[str] = typer.Option(None, "--device"),
    params: bool = typer.Option(False, "--params", help="Also build the model and print its parameter counts."),
) -> None:
    """Resolve preset ← --config ← --data ← --set exactly as training does, and print the YAML,
    then each setting the preset takes from the reference code, with its resolved value."""
    if preset is None and config is None:
        preset = "paper"
    recipe = resolve_recipe("ldmi", modality, preset, config, sets, data, device)
    cfg = recipe.config
    typer.echo(yaml.safe_dump(cfg, sort_keys=False), nl=False)
    if preset is not None:
        from inrkit_ldmi.presets.references import annotated_references

        lines = annotated_references(cfg, cfg["model"]["domain"]["name"], preset)
        if lines:
            typer.echo(f"# settings of preset '{preset}' taken from the reference code (value  # reference setting):")
            typer.echo("\n".join(f"# {line}" for line in lines))
    if params:
        report = recipe.build_model().parameter_report()
        typer.echo(yaml.safe_dump({"parameters": report}, sort_keys=False), nl=False)

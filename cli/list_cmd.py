"""``inrkit list``: every registry as a table (name, description, config fields)."""
from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from inrkit.registry import KINDS, get_registry

from .app import app


@app.command("list", epilog="Example: inrkit list hypernets")
def list_parts(
    kind: str = typer.Argument(None, help="Only this registry (e.g. hypernets)."),
    pattern: str = typer.Option("*", "--filter", help="Wildcard on names, e.g. 'conv*'."),
) -> None:
    """Print every registered part: name, one-line description and config fields."""
    kinds = [get_registry(kind).kind] if kind else list(KINDS)
    console = Console(width=160)
    for k in kinds:
        reg = get_registry(k)
        table = Table(title=k, show_lines=False, expand=False)
        table.add_column("name", style="bold")
        table.add_column("description")
        table.add_column("config fields (default)")
        for name in reg.names(pattern):
            entry = reg.get(name)
            fields = ", ".join(f"{key}={val}" for key, val in entry.fields().items())
            table.add_row(entry.name, entry.description, fields)
        console.print(table)

"""``inrkit report RUN``: one self-contained HTML page about a run or a comparison."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .app import app


@app.command("report", epilog="Example: inrkit report runs/sphere-paper --out sphere-report.html")
def report(
    run: Path = typer.Argument(..., help="A run directory, or a comparison folder (inrkit compare --out)."),
    out: Optional[Path] = typer.Option(None, "--out", help="The HTML file to write (default RUN/report.html)."),
) -> None:
    """Write an HTML page (images embedded, no network): config, curves, metrics, samples, reconstructions."""
    from inrkit_ldmi.run_report import write_html_report

    print(f"wrote {write_html_report(run, out)}")

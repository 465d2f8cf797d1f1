"""The typer application and its sub-groups; command modules attach themselves here."""
from typing import Optional

import typer

from inrkit.registry import SEED_MAX  # the range of every --seed option

app = typer.Typer(
    name="inrkit",
    help="Generative models over implicit neural representations (LDMI and baselines).",
    epilog="Example: inrkit train ldmi --modality sphere --preset tiny --out run",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
train_app = typer.Typer(help="Train a model.", no_args_is_help=True,
                        epilog="Example: inrkit train ldmi --modality image --preset tiny --out run")
data_app = typer.Typer(help="Prepare and inspect datasets.", no_args_is_help=True,
                       epilog="Example: inrkit data show --modality image --data photos --out photos.png")
debug_app = typer.Typer(help="Inspect configs and parts.", no_args_is_help=True,
                        epilog="Example: inrkit debug config --modality image --preset paper --params")
app.add_typer(train_app, name="train")
app.add_typer(data_app, name="data")
app.add_typer(debug_app, name="debug")


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        import inrkit

        try:
            installed = version("inrkit")
        except PackageNotFoundError:  # run from a checkout that was never installed
            installed = inrkit.__version__
        print(f"inrkit {installed}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_print_version, is_eager=True, help="Print the installed version and exit."),
) -> None:
    """Generative models over implicit neural representations (LDMI and baselines)."""


def finite(value: Optional[float]) -> Optional[float]:
    """Option callback: inf and nan are refused (typer's min/max ranges let both through)."""
    import math

    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"must be a finite number, got {value}")
    return value

"""The typer application and its sub-groups; command modules attach themselves here."""
import typer

app = typer.Typer(
    name="inrkit",
    help="Generative models over implicit neural representations (LDMI and baselines).",
    epilog="Example: inrkit train ldmi --modality sphere --preset tiny --out run",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
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

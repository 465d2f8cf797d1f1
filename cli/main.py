"""Entry point: imports every command module, turns expected errors into one line and exit 2."""
from __future__ import annotations

import importlib
import sys

from .app import app

# Each module registers its commands on ``cli.app``'s typer objects when imported.
COMMAND_MODULES = [
    "cli.list_cmd",
    "cli.train_cmd",
    "cli.train_ldm_cmd",
    "cli.sample_cmd",
    "cli.evaluate_cmd",
    "cli.debug_cmd",
    "cli.data_cmd",
    "cli.scale_cmd",
    "cli.compare_cmd",
    "cli.inpaint_cmd",
    "cli.complete_cmd",
]


def _load_commands() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name)


def main(argv: list[str] | None = None) -> None:
    from inrkit.errors import InrkitError

    _load_commands()
    try:
        app(args=argv, standalone_mode=True)
    except InrkitError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()

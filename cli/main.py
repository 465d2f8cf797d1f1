"""Entry point: imports every command module, turns expected errors into one line and exit 2."""
from __future__ import annotations

import importlib
import os
import sys
import warnings

import typer

from .app import app

# Each module registers its commands on ``inrkit_cli.app``'s typer objects when imported.
COMMAND_MODULES = [
    "inrkit_cli.list_cmd",
    "inrkit_cli.train_cmd",
    "inrkit_cli.train_ldm_cmd",
    "inrkit_cli.sample_cmd",
    "inrkit_cli.evaluate_cmd",
    "inrkit_cli.debug_cmd",
    "inrkit_cli.data_cmd",
    "inrkit_cli.scale_cmd",
    "inrkit_cli.compare_cmd",
    "inrkit_cli.inpaint_cmd",
    "inrkit_cli.report_cmd",
    "inrkit_cli.complete_cmd",
]


def typer_app():
    """The typer application with every command attached (what the docs' CLI reference reads)."""
    _load_commands()
    return app


def _load_commands() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name)


def _one_line_warnings():
    """Warnings print as ``warning: message``, one line, no source line (the CLI is for users);
    returns the previous handler, which ``main`` puts back (the CLI also runs in-process)."""
    import warnings

    previous = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"warning: {message}", file=file or sys.stderr)

    warnings.showwarning = show
    return previous


def _help_hint(err) -> str:
    """`` (see: inrkit CMD --help)`` for a usage error raised inside a command's context."""
    ctx = getattr(err, "ctx", None)
    path = getattr(ctx, "command_path", None)
    return f" (see: {path} --help)" if path else ""


def _exit(code: int) -> None:
    """Leave with ``code``. A process of a multi-process (DDP) run leaves at once, without the
    interpreter's teardown: there, freeing the DDP model while a collective of the failed step is
    still pending joins gloo's/NCCL's worker threads while holding the GIL those threads wait for,
    and the process hangs instead of exiting (seen with gloo on CPU). Its checkpoints are already
    complete (written atomically), its run lock is a flock the OS releases, its logs are flushed."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _out_of_memory(err: BaseException) -> bool:
    """An allocation the machine refused (host or GPU), as torch and Python report it."""
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":
        return True
    text = str(err)
    return any(m in text for m in ("can't allocate memory", "not enough memory", "CUDA out of memory",
                                   "out of memory", "Cannot allocate memory"))


def main(argv: list[str] | None = None) -> None:
    from inrkit.errors import InrkitError, Interrupted, os_error_message

    import warnings

    _load_commands()
    previous = _one_line_warnings()
    try:
        code = app(args=argv, prog_name="inrkit", standalone_mode=False)
        if isinstance(code, int) and not isinstance(code, bool) and code:  # typer.Exit(N); Ctrl-C: 130
            _exit(code)
    except typer.TyperException as err:  # a usage error: unknown option, bad or missing value
        if type(err).__name__ != "NoArgsIsHelpError":  # a group typed alone has printed its help
            print(f"error: {' '.join(err.format_message().split())}{_help_hint(err)}", file=sys.stderr)
        _exit(getattr(err, "exit_code", 2))
    except Interrupted as err:
        if os.environ.get("RANK", "0") == "0":  # every DDP rank stopped at the same step: one line
            print(f"stopped: {err}", file=sys.stderr)
        _exit(err.exit_code)
    except InrkitError as err:
        if str(err):  # ProcessesFailed: the processes it launched have said why
            print(f"error: {err}", file=sys.stderr)
        _exit(err.exit_code)
    except OSError as err:
        # the machine, not inrkit: a full disk, a file without permission, a folder where a file was meant
        print(f"error: {os_error_message(err)}", file=sys.stderr)
        _exit(2)
    except UnicodeDecodeError as err:
        print(f"error: a file is not UTF-8 text ({err.reason} at byte {err.start})", file=sys.stderr)
        _exit(2)
    except Exception as err:  # torch.OutOfMemoryError is a RuntimeError; so is a collective whose peer left
        if isinstance(err, (MemoryError, RuntimeError)) and _out_of_memory(err):
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            print(f"error: out of memory ({first[:200]}); ask for less at once: a smaller --resolution,"
                  " --batch-size or --n", file=sys.stderr)
            _exit(2)
        from inrkit.train.launch import PEER_LOST, peer_lost

        if int(os.environ.get("WORLD_SIZE", "1")) > 1 and peer_lost(err):
            # a consequence, not the cause: the process that failed has printed its own message
            print(f"error: training process of rank {os.environ.get('RANK', '?')} stopped because another process"
                  " of this run ended (its own message says why); the newest checkpoint is kept: continue with"
                  " --resume", file=sys.stderr)
            _exit(PEER_LOST)
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # a bug on this rank: its traceback, then leave at once
            import traceback

            traceback.print_exc()
            _exit(1)
        raise
    finally:
        warnings.showwarning = previous


if __name__ == "__main__":
    main()

"""``--devices N``: the same ``inrkit train ...`` command again, one process per device.

Every command that trains (``train ldmi`` with either paradigm, ``train ldm``) launches through
here, so the library never starts the CLI. In the relaunched processes the launcher has set
``WORLD_SIZE`` (as torchrun does), the command runs as typed, every rank trains and rank 0 alone writes the run.
"""
from __future__ import annotations

import os
import sys


# keyword → flag of the relaunched ``inrkit train`` command
FLAGS = (("paradigm", "--paradigm"), ("modality", "--modality"), ("data", "--data"), ("preset", "--preset"),
         ("config", "--config"), ("out", "--out"), ("stage", "--stage"), ("source", "--from"),
         ("prior_from", "--prior-from"), ("device", "--device"))


def needs_launch(devices: int) -> bool:
    """True in the command a user typed with ``--devices N`` (N > 1); False inside the launched processes."""
    return devices > 1 and "WORLD_SIZE" not in os.environ


def is_main_process() -> bool:
    """Rank 0 (or a single process): the process that prints summaries."""
    return int(os.environ.get("RANK", "0")) == 0


def train_args(command: str, **opts) -> list[str]:
    """The ``inrkit train <command>`` arguments for ``opts`` (``sets``: the ``--set`` items;
    ``resume``: False, True or "older"; ``overwrite``: a flag; the rest as :data:`FLAGS` names them)."""
    args = ["train", command]
    for key, flag in FLAGS:
        if opts.get(key) is not None:
            args += [flag, str(opts[key])]
    for item in opts.get("sets") or []:
        args += ["--set", item]
    if opts.get("resume"):
        args.append("--resume-older" if opts["resume"] == "older" else "--resume")
    if opts.get("overwrite"):
        args.append("--overwrite")
    return args


def relaunch(devices: int, command: str, **opts) -> None:
    """Run ``inrkit train <command>`` with ``opts`` in one process per device (inrkit's launcher,
    :func:`inrkit.train.launch.launch_local`: Ctrl-C or SIGTERM is forwarded once and the ranks save
    one checkpoint); a failed run exits with the processes' code (they print their own error)."""
    from inrkit.train.launch import launch_local

    args = train_args(command, **opts)
    print(f"launching {devices} processes: inrkit {' '.join(args)}", file=sys.stderr)
    launch_local(devices, [sys.executable, "-m", "inrkit_cli.main", *args])

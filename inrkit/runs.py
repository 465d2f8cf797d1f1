"""Run directories: where a training run keeps its config, weights, logs and outputs.

::

    run/
      config.yaml          resolved config, plain data with schema_version (rebuilds the model)
      run.json             provenance: command, versions, dataset metadata, domain description
      model.safetensors    final weights (EMA copies included, they are part of the state dict)
      metrics.jsonl        one JSON record per logged step
      .lock                held (fcntl.flock) by the process training in the run
      checkpoints/checkpoint-{stage}-{step}/
      samples/, reconstructions/, summary.json, eval.json

``load_run(path)`` rebuilds any saved model from the registry names and configs in
``config.yaml`` (the ``models`` registry), with no code from the user.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from .config import SCHEMA_VERSION, dump_yaml, load_yaml
from .errors import CheckpointError, ConfigError, os_error_message
from .registry import registry
from .runlock import LOCK_FILE, RunLock

CONFIG_FILE = "config.yaml"
RUN_INFO_FILE = "run.json"
WEIGHTS_FILE = "model.safetensors"
SUMMARY_FILE = "summary.json"


def is_run_dir(path: str | Path) -> bool:
    return (Path(path) / CONFIG_FILE).is_file()


def prepare_run_dir(path: str | Path, *, resume: bool = False, overwrite: bool = False, is_main: bool = True) -> Path:
    """Create (or reopen, with ``resume``) a run directory; never clobber one silently.

    An existing non-empty directory is refused unless ``resume`` (continue it) or ``overwrite``
    (replace it); ``overwrite`` deletes only directories that are inrkit runs.
    """
    path = Path(path).expanduser()
    if is_main:
        claim_run_dir(path, resume=resume, overwrite=overwrite).release()
    return path


def claim_run_dir(path: str | Path, *, resume: bool = False, overwrite: bool = False) -> RunLock:
    """:func:`prepare_run_dir` for the process that will train there: the directory is checked,
    then locked (a second trainer is refused, naming the holder's pid), then, with ``overwrite``,
    emptied. The caller releases the lock when it is done."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"run directory path is a file: {path}")
    exists = path.is_dir() and any(p.name != LOCK_FILE for p in path.iterdir())
    if exists and resume:
        if not is_run_dir(path):
            raise CheckpointError(f"cannot resume {path}: it is not an inrkit run (no {CONFIG_FILE})")
    elif exists and overwrite:
        if not is_run_dir(path):
            raise ConfigError(f"refusing to overwrite {path}: it is not an inrkit run (no {CONFIG_FILE})")
    elif exists:
        raise ConfigError(f"run directory already exists: {path} (pass --resume to continue it or --overwrite to replace it)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create the run directory {os_error_message(err, path)}") from None
    lock = RunLock.acquire(path)
    if exists and overwrite:
        for entry in path.iterdir():  # everything but the lock (the lock stays held on the same file)
            if entry.name != LOCK_FILE:
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    return lock


def save_run_config(run_dir: str | Path, config: dict[str, Any]) -> Path:
    data = {"schema_version": SCHEMA_VERSION, **{k: v for k, v in config.items() if k != "schema_version"}}
    out = Path(run_dir) / CONFIG_FILE
    dump_yaml(data, out)
    return out


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """The stored config of a run; a missing directory or a newer schema is a CheckpointError."""
    run_dir = Path(run_dir).expanduser()
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory not found: {run_dir}")
    if not is_run_dir(run_dir):
        raise CheckpointError(f"{run_dir} is not an inrkit run (no {CONFIG_FILE})")
    try:
        config = load_yaml(run_dir / CONFIG_FILE)
    except ConfigError as err:
        raise CheckpointError(str(err)) from None
    version = config.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise CheckpointError(
            f"{run_dir / CONFIG_FILE}: schema_version {version!r} is not supported by this inrkit (<= {SCHEMA_VERSION})"
        )
    if not isinstance(config.get("model"), dict) or "name" not in config["model"]:
        raise CheckpointError(f"{run_dir / CONFIG_FILE}: no 'model' section with a 'name'")
    return config


def build_model(model_spec: dict[str, Any]):
    """A model from its plain-data spec ``{name: ..., **fields}`` through the ``models`` registry."""
    spec = dict(model_spec)
    name = spec.pop("name")
    return registry("models").build(name, **spec)


def weights_path(run_dir: Path, weights: str) -> Path:
    """``final``/``ema`` → model.safetensors; a checkpoint name or a path → its weights file."""
    if weights in ("final", "ema"):
        return run_dir / WEIGHTS_FILE
    candidate = Path(weights).expanduser()
    for p in (candidate, run_dir / candidate, run_dir / "checkpoints" / weights):
        if p.is_dir() and (p / WEIGHTS_FILE).is_file():
            return p / WEIGHTS_FILE
        if p.is_file():
            return p
    raise CheckpointError(f"weights '{weights}' not found in {run_dir} (use final, ema, a checkpoint name or a file)")


def load_run(path: str | Path, device: str | torch.device | None = None, weights: str = "final"):
    """Rebuild the model saved in a run directory and load its weights (eval mode).

    ``weights``: ``final`` (model.safetensors), ``ema`` (the same, with EMA copies swapped into
    the live weights by models that keep them), or a checkpoint (``checkpoint-vae-500``, a
    checkpoint directory or a ``.safetensors`` file).
    """
    from .train.checkpoint import load_model_weights
    from .train.engine import resolve_device

    run_dir = Path(path).expanduser()
    config = read_run_config(run_dir)
    file = weights_path(run_dir, weights)
    model = build_model(config["model"])
    model.to(resolve_device(device or "auto"))
    load_model_weights(model, file)
    if weights == "ema":
        apply = getattr(model, "use_ema_weights", None)
        if apply is None:
            raise CheckpointError(f"{run_dir}: model '{config['model']['name']}' keeps no EMA weights")
        apply()
    model.eval()
    model.run_dir = run_dir
    model.run_config = config
    return model

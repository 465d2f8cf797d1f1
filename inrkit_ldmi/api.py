"""Training LDMI into a run directory (what ``LDMI.fit`` and ``inrkit train ldmi`` call)."""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

import inrkit
from inrkit.data import open_dataset
from inrkit.errors import CheckpointError, ConfigError, InrkitError
from inrkit.io import save_state, write_json
from inrkit.recipe import Recipe
from inrkit.registry import spec_of
from inrkit.runs import CONFIG_FILE, RUN_INFO_FILE, SUMMARY_FILE, WEIGHTS_FILE, prepare_run_dir, read_run_config, save_run_config
from inrkit.train import Engine, Trainer
from inrkit.train import checkpoint as ckpt



def fit(model, data=None, out: str | Path = "runs/ldmi", stages: tuple[str, ...] | None = None,
        resume: bool = False, overwrite: bool = False, init_from: str | Path | None = None,
        engine: Engine | None = None, on_step=None, **train_overrides) -> dict[str, Any]:
    """Train ``model`` (an LDMI) into the run directory ``out``; returns the run summary.

    ``data``: None (the config's data section), a path (read by the domain's dataset), or a
    ``Dataset`` of model-space grids (then no held-out metrics). ``train_overrides`` merge into
    the train section, e.g. ``vae={"steps": 100}, log_every=1``. ``stages`` without the first
    stage continues an existing run from its earlier stages' newest checkpoints (or from
    ``init_from``: a run directory or a weights file).
    """
    recipe = model.recipe or Recipe.from_config(model.run_config or {"model": spec_of(model)}, model=spec_of(model)["name"])
    user_dataset = data if isinstance(data, Dataset) else None
    if train_overrides or (data is not None and user_dataset is None):
        recipe = recipe.with_changes(train=train_overrides, data=None if user_dataset is not None else data)
    if spec_of(model) != recipe.config["model"]:
        raise ConfigError("model: the run config's model section does not describe this model")
    model.run_config, model.recipe = recipe.config, recipe
    owns_engine = engine is None
    engine = engine or Engine(recipe.train_config.device)
    try:
        return _train(model, recipe, engine, user_dataset, out, stages, resume, overwrite, init_from, on_step)
    finally:
        if owns_engine:
            engine.close()


def _train(model, recipe, engine, user_dataset, out, stages, resume, overwrite, init_from, on_step):
    run_cfg, train_cfg = recipe.config, recipe.train_config
    order = tuple(model.stages)
    stages = tuple(order if stages in (None, "all", ("all",)) else stages)
    for s in stages:
        if s not in order:
            raise ConfigError(f"unknown stage '{s}'; this model trains: {', '.join(order)}")
    continues = stages[0] != order[0]
    run_dir = _prepare_on_main(engine, out, resume=resume or continues, overwrite=overwrite)
    if (resume or continues) and (run_dir / CONFIG_FILE).exists():
        _check_same_model(read_run_config(run_dir)["model"], run_cfg["model"], run_dir)
    if continues and init_from is None:
        for earlier in order[: order.index(stages[0])]:
            if ckpt.latest_checkpoint(run_dir, earlier) is None:
                raise CheckpointError(f"stage '{stages[0]}' needs a trained '{earlier}' stage, and {run_dir} has none"
                                      f" (train it first, or pass --from RUN)")

    model.to(engine.device)
    if init_from is not None:
        _load_initial(model, Path(init_from))

    if user_dataset is not None:
        train_ds, val_ds = user_dataset, None
    else:
        train_ds, val_ds = recipe.dataset("train"), recipe.dataset("val")
    model._eval_data = val_ds

    if engine.is_main:
        save_run_config(run_dir, run_cfg)
        write_json(run_dir / RUN_INFO_FILE, plain(_run_info(model, train_ds, val_ds, engine, init_from)))
    engine.barrier()

    t0 = time.perf_counter()
    trainer = Trainer(model, train_cfg, run_dir, engine=engine, on_step=on_step)
    summary = trainer.fit(train_ds, stages=stages, resume=resume)
    result = {
        "stages": summary,
        "wall_time_s": round(time.perf_counter() - t0, 3),
        "n_train": len(train_ds),
        "n_val": len(val_ds) if val_ds is not None else 0,
        "parameters": model.parameter_report(),
        "device": str(engine.device),
        "world_size": engine.world_size,
    }
    if engine.is_main:
        save_state(model, run_dir / WEIGHTS_FILE)
        write_json(run_dir / SUMMARY_FILE, plain(result))
    engine.barrier()
    return result


def _prepare_on_main(engine: Engine, out, **kwargs) -> Path:
    """Rank 0 checks and creates the run directory; the others learn whether that worked."""
    error: InrkitError | None = None
    if engine.is_main:
        try:
            prepare_run_dir(out, is_main=True, **kwargs)
        except InrkitError as err:
            error = err
    if not engine.broadcast_flag(error is None):
        raise error or InrkitError(f"rank 0 could not prepare the run directory {out}")
    return Path(out).expanduser()


def _check_same_model(saved: dict, new: dict, run_dir: Path) -> None:
    def first_diff(a, b, prefix="model"):
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                d = first_diff(a.get(k), b.get(k), f"{prefix}.{k}")
                if d:
                    return d
            return None
        return None if a == b else f"{prefix} ({a!r} in the run, {b!r} now)"

    diff = first_diff(saved, new)
    if diff:
        raise ConfigError(f"{run_dir}: cannot continue this run with a different model: {diff}")


def _load_initial(model, source: Path) -> None:
    file = source / WEIGHTS_FILE if source.is_dir() else source
    if not file.exists():
        raise CheckpointError(f"--from: no weights at {file}")
    ckpt.load_model_weights(model, file)


def _run_info(model, train_ds, val_ds, engine, init_from) -> dict[str, Any]:
    return {
        "inrkit_version": inrkit.__version__,
        "torch_version": torch.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": list(sys.argv),
        "domain": model.domain.describe(),
        "data": {"train": getattr(train_ds, "meta", {}), "n_train": len(train_ds),
                 "n_val": len(val_ds) if val_ds is not None else 0},
        "parameters": model.parameter_report(),
        "device": str(engine.device),
        "world_size": engine.world_size,
        "init_from": str(init_from) if init_from else None,
    }


def run_dataset(domain, data_cfg: dict[str, Any] | None, split: str, path: str | Path | None = None):
    """One split of a run's ``data`` section (its path and dataset fields); a ``path`` given here
    (``--data``) replaces the run's data, fields included."""
    if path is not None:
        return open_dataset(domain, str(path), split=split)
    fields = dict(data_cfg or {})
    return open_dataset(domain, fields.pop("path", None), split=split, **fields)


def data_path(model, path: str | Path | None = None) -> str | None:
    """Where ``run_dataset(..., path=path)`` reads from: ``path`` or the run's own (None: built-in)."""
    return str(path) if path is not None else (model.run_config.get("data") or {}).get("path")


def plain(x):
    """JSON-safe copy (numpy arrays and scalars, tensors, paths) of run metadata."""
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if isinstance(x, torch.Tensor):
        return plain(x.tolist())
    if hasattr(x, "tolist"):
        return plain(x.tolist())
    if isinstance(x, float) and not math.isfinite(x):
        return None  # JSON has no inf/nan; e.g. a Chamfer distance to an empty shape
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    return str(x)

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

:class:`Run` opens or creates one: ``Run.open(path).load_model()`` rebuilds any saved model from
the registry names and configs in ``config.yaml`` (through its recipe, :mod:`inrkit.recipe`)
with no code from the user (``load_run(path)`` for short); ``Run.create(path, recipe)`` and
``run.fit(model, engine)`` train one, the held-out split handed to the model's end-of-stage
hooks by the trainer.
"""
from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch

from .config import SCHEMA_VERSION, apply_overrides, dump_yaml, load_yaml
from .data import open_dataset
from .errors import CheckpointError, ConfigError, InrkitError
from .io import plain, save_state, write_json
from .outputs import refuse_inside_data
from .run_folder import CONFIG_FILE, RUN_INFO_FILE, SUMMARY_FILE, WEIGHTS_FILE, claim_run_dir, is_run_dir

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


class Run:
    """A run directory and what it holds: its recipe, weights, checkpoints and held-out split.

    ``Run.open(path)`` reads a run (any written before, too); ``Run.create(path, recipe)`` makes or
    reopens one to train into; ``run.fit(model)`` trains a model with an engine and writes the
    weights and summary; ``run.load_model()`` is the one way to get a model and its weights back.
    """

    def __init__(self, path: str | Path, config: dict[str, Any], recipe=None):
        self.path = Path(path).expanduser()
        self.config = config
        self._recipe = recipe
        self._lock, self._created = None, False

    # -- opening and creating ------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path) -> "Run":
        """An existing run directory (a CheckpointError if it is none)."""
        return cls(path, read_run_config(path))

    @classmethod
    def create(cls, path: str | Path, recipe, *, resume: bool | str = False, overwrite: bool = False,
               engine=None) -> "Run":
        """The run directory ``path`` for ``recipe``: created, or reopened with ``resume`` (its model
        must be the recipe's), or replaced with ``overwrite`` (only if it is an inrkit run). Rank 0
        prepares and locks it (a second trainer is refused) and the other ranks learn whether that
        worked; :meth:`fit` releases the lock (or :meth:`release`)."""
        if resume not in (False, True, "older"):
            raise ConfigError(f"resume must be False, True or 'older', got {resume!r}")
        refuse_inside_data(path, (recipe.config.get("data") or {}).get("path"))
        created = not Path(path).expanduser().exists()
        lock = on_main(engine, f"preparing the run directory {path}",
                       lambda: claim_run_dir(path, resume=bool(resume), overwrite=overwrite))
        run = cls(path, recipe.config, recipe)
        run._lock, run._created = lock, created
        try:
            if resume and is_run_dir(run.path):
                # resolved, so that fields added since the run was written compare at their defaults
                saved = Run.open(run.path).recipe.config["model"]
                check_same_model(saved, recipe.config["model"], run.path, ignore=recipe.runtime_paths)
        except BaseException:
            run.release()
            raise
        return run

    def release(self) -> None:
        """Give up the run lock taken by :meth:`create` (a no-op for an opened run)."""
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()

    @property
    def recipe(self):
        """The run's :class:`inrkit.recipe.Recipe` (resolved from config.yaml on first use)."""
        if self._recipe is None:
            from .recipe import Recipe

            self._recipe = Recipe.from_config(self.config)
        return self._recipe

    # -- weights ---------------------------------------------------------------------------------
    def load_model(self, device: str | torch.device | None = None, weights: str = "final",
                   runtime: list[str] | None = None):
        """The run's model with its weights (eval mode): ``final`` (model.safetensors), ``ema`` (the same,
        with EMA copies swapped into the live weights by models that keep them), or a checkpoint
        (``checkpoint-vae-500``, a checkpoint directory or a ``.safetensors`` file). ``runtime``:
        ``model.PATH=value`` items for its speed settings (:meth:`Recipe.with_runtime`)."""
        from .train.checkpoint import load_model_weights
        from .train.engine import resolve_device

        file = weights_path(self.path, weights)
        model = self.recipe.with_runtime(runtime).build_model()
        model.to(resolve_device(device or "auto"))
        load_model_weights(model, file)
        if weights == "ema":
            apply = getattr(model, "use_ema_weights", None)
            if apply is None:
                raise CheckpointError(f"{self.path}: model '{self.config['model']['name']}' keeps no EMA weights")
            apply()
        return model.eval()

    # -- data --------------------------------------------------------------------------------------
    def data_path(self, path: str | Path | None = None) -> str | None:
        """Where :meth:`dataset` reads from: ``path`` or the run's own (None: the built-in set)."""
        return str(path) if path is not None else (self.config.get("data") or {}).get("path")

    def dataset(self, split: str = "val", path: str | Path | None = None, fields: dict[str, Any] | None = None):
        """One split of the run's data (``val``: the held-out split); a ``path`` given here
        (``--data``) replaces the run's data, its dataset fields included: ``fields`` are those of
        the new data (``--set data.units=degC``, :func:`split_data_sets`)."""
        if path is None:
            if fields:
                raise ConfigError(f"data settings {sorted(fields)} apply to the data given with --data;"
                                  " the run's own data is read as it was trained")
            return self.recipe.dataset(split)
        return open_dataset(self.recipe.domain, str(path), split=split, **(fields or {}))

    # -- training ----------------------------------------------------------------------------------
    def fit(self, model, engine, stages: tuple[str, ...] | None = None, resume: bool | str = False,
            init_from: str | Path | None = None, on_step=None, dataset=None) -> dict[str, Any]:
        """Train ``model`` (built from this run's recipe) into the run; returns the run summary.

        ``dataset``: a user's ``Dataset`` in place of the recipe's data (then no held-out split).
        ``stages`` without the first one continues from the earlier stages' newest checkpoints
        (or from ``init_from``: a run directory or a weights file). Every checkpoint the run
        continues from must load before anything of the run is rewritten; ``resume="older"`` sets
        corrupt newest ones aside and continues from the newest intact ones. A folder this run
        created is removed again if training fails before its config was written.
        """
        try:
            return self._fit(model, engine, stages, resume, init_from, on_step, dataset)
        except BaseException:
            if self._created and engine.is_main and not is_run_dir(self.path):
                shutil.rmtree(self.path, ignore_errors=True)  # made by this run, and nothing of a run in it yet
            raise
        finally:
            self.release()

    def _fit(self, model, engine, stages, resume, init_from, on_step, dataset) -> dict[str, Any]:
        from .train import Trainer
        from .train import checkpoint as ckpt
        from .train.stage_order import check_earlier_stages

        order = tuple(model.stages)
        stages, continues = stage_plan(model, stages)
        model.to(engine.device)
        if init_from is not None:
            load_initial(model, Path(init_from), self.recipe.config.get("model"))
        if (resume or continues) and is_run_dir(self.path):
            on_main(engine, f"checking the checkpoints of {self.path}",
                    lambda: check_checkpoints(self.path, order, resume))
        if continues and init_from is None:
            for earlier in order[: order.index(stages[0])]:
                if ckpt.latest_checkpoint(self.path, earlier) is None:
                    raise CheckpointError(f"stage '{stages[0]}' needs a trained '{earlier}' stage, and {self.path} has"
                                          f" none (train it first, or pass --from RUN)")
            # and not on one that stopped short of its steps unasked (killed, or its steps raised since)
            check_earlier_stages(self.path, order, stages[0], self.recipe.train_config, resume)
        if continues and not resume:  # a later stage again: never over its own checkpoints unasked
            for stage in stages:
                newest = ckpt.latest_checkpoint(self.path, stage)
                if newest is not None:
                    raise ConfigError(f"{self.path} already has checkpoints of stage '{stage}' (newest"
                                      f" {Path(newest.path).name}): pass --resume to continue it, or move"
                                      f" {self.path}/checkpoints/checkpoint-{stage}-* away to train it again")
        if dataset is not None:
            train_ds, val_ds = dataset, None
        else:
            train_ds, val_ds = self.dataset("train"), self.dataset("val")
        if engine.is_main:
            save_run_config(self.path, self.config)
            info = run_info(model, train_ds, val_ds, engine, init_from)
            write_json(self.path / RUN_INFO_FILE, plain(info))
            if info["data"].get("conversion"):  # what the user's data becomes, said once
                print(f"data: {info['data']['conversion']}", file=sys.stderr)
        engine.barrier()

        t0 = time.perf_counter()
        trainer = Trainer(model, self.recipe.train_config, self.path, engine=engine, on_step=on_step, heldout=val_ds,
                          run_config=self.config)
        summary = trainer.fit(train_ds, stages=stages, resume=bool(resume))
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
            save_state(model, self.path / WEIGHTS_FILE)
            write_json(self.path / SUMMARY_FILE, plain(result))
        engine.barrier()
        return result


def on_main(engine, what: str, fn):
    """``fn()`` on rank 0 alone (or without an engine); every rank raises if it failed there."""
    error: InrkitError | None = None
    result = None
    is_main = engine is None or engine.is_main
    if is_main:
        try:
            result = fn()
        except InrkitError as err:
            error = err
    ok = error is None if engine is None else engine.broadcast_flag(error is None)
    if not ok:
        raise error or InrkitError(f"rank 0 failed {what}")
    return result


def check_checkpoints(run_dir: Path, order: tuple[str, ...], resume) -> None:
    from .train import checkpoint as ckpt

    ckpt.recover_interrupted(run_dir)
    for stage in order:
        ckpt.set_aside_corrupt(run_dir, stage, use_older=resume == "older")


def check_same_model(saved: dict, new: dict, run_dir: Path, ignore: set[str] = frozenset()) -> None:
    """Refuse to continue a run whose model section differs; ``ignore``: dotted paths of runtime
    fields (speed settings, :class:`inrkit.registry.PartConfig`), which may differ."""
    def first_diff(a, b, prefix="model"):
        if prefix in ignore:
            return None
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


def load_initial(model, source: Path, model_config: dict[str, Any] | None = None) -> None:
    """Initial weights from a run directory or a weights file. From a run, parts of another kind
    (``model_config``: this run's model section) are named before any weight is compared."""
    from .train.checkpoint import load_model_weights

    if source.is_dir() and is_run_dir(source) and model_config is not None:
        theirs = read_run_config(source)["model"]
        other = [f"{key} '{_part_name(theirs.get(key))}' there, '{_part_name(mine)}' here"
                 for key, mine in model_config.items() if _part_name(theirs.get(key)) != _part_name(mine)]
        if other:
            raise CheckpointError(f"--from {source}: that run's model is built of other parts ({'; '.join(other)})")
    file = source / WEIGHTS_FILE if source.is_dir() else source
    if not file.exists():
        raise CheckpointError(f"--from: no weights at {file}")
    load_model_weights(model, file)


def _part_name(section: Any) -> Any:
    """A model section's part name (``{name: siren, ...}`` → siren); plain values as they are."""
    return section.get("name") if isinstance(section, dict) else section


def run_info(model, train_ds, val_ds, engine, init_from) -> dict[str, Any]:
    from . import __version__

    meta = getattr(train_ds, "meta", None) or {}
    return {
        "inrkit_version": __version__,
        "torch_version": torch.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": list(sys.argv),
        "domain": model.domain.describe(),
        "data": {"train": meta, "n_train": len(train_ds), "n_val": len(val_ds) if val_ds is not None else 0,
                 "conversion": meta.get("conversion")},
        "parameters": model.parameter_report(),
        "device": str(engine.device),
        "world_size": engine.world_size,
        "init_from": str(init_from) if init_from else None,
    }


def load_run(path: str | Path, device: str | torch.device | None = None, weights: str = "final"):
    """The model saved in a run directory, with its weights (``Run.open(path).load_model(...)``)."""
    return Run.open(path).load_model(device, weights)


def stage_plan(model, stages) -> tuple[tuple[str, ...], bool]:
    """The stages to train (``None``/``all``: every one) and whether they continue earlier ones."""
    order = tuple(model.stages)
    stages = tuple(order if stages in (None, "all", ("all",)) else stages)
    for s in stages:
        if s not in order:
            raise ConfigError(f"unknown stage '{s}'; this model trains: {', '.join(order)}")
    return stages, stages[0] != order[0]


def save_pretrained(model, path: str | Path) -> Path:
    """Write ``model`` in the run layout, without the training history: ``config.yaml`` (its
    spec, plus the data/train sections of the run it came from) and ``model.safetensors``.

    ``load_run`` (and ``from_pretrained``) reads it back. The folder must be new, empty, or
    already an inrkit run/pretrained folder (its two files are replaced); nothing else is touched.
    """
    from .io import save_state
    from .registry import spec_of

    path = Path(path).expanduser()
    if path.exists() and (not path.is_dir() or (any(path.iterdir()) and not is_run_dir(path))):
        raise ConfigError(f"refusing to write into {path}: it exists and is not an empty folder or an inrkit run")
    path.mkdir(parents=True, exist_ok=True)
    recipe = getattr(model, "recipe", None)
    config = {k: v for k, v in (recipe.config if recipe is not None else {}).items() if k != "model"}
    save_state(model, path / WEIGHTS_FILE)
    save_run_config(path, {"model": spec_of(model), **config})
    return path


def split_data_sets(sets: list[str] | None, data: str | Path | None) -> tuple[list[str], dict[str, Any]]:
    """``--set`` items of a command that reads a trained run, split in two: ``data.…`` items say
    how the data given with ``--data`` is read (``data.units=degC``, ``data.variable=u10``,
    ``data.select={level: 850}``: that data's dataset fields, since it replaces the run's), the
    rest stay the model's speed settings. ``data.…`` items without ``--data`` are a ConfigError."""
    data_items = [s for s in sets or [] if s.split("=", 1)[0].strip().startswith("data.")]
    rest = [s for s in sets or [] if s not in data_items]
    if data_items and data is None:
        raise ConfigError(f"--set {data_items[0]}: data settings apply to the data given with --data;"
                          " the run's own data is read as it was trained")
    fields = apply_overrides({}, data_items).get("data", {})
    if "path" in fields:
        raise ConfigError("--set data.path: give the data with --data")
    return rest, fields

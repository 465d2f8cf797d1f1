"""Training a latent model into a run directory (what ``LDMI.fit`` and ``inrkit train ldmi`` call)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from inrkit.errors import ConfigError
from inrkit.recipe import Recipe
from inrkit.registry import spec_of
from inrkit.runs import Run, stage_plan
from inrkit.train import Engine


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
    recipe = model.recipe or Recipe.from_config({"model": spec_of(model)}, model=spec_of(model)["name"])
    user_dataset = data if isinstance(data, Dataset) else None
    if train_overrides or (data is not None and user_dataset is None):
        recipe = recipe.with_changes(train=train_overrides, data=None if user_dataset is not None else data)
    if spec_of(model) != recipe.config["model"]:
        raise ConfigError("model: the run config's model section does not describe this model")
    model.recipe = recipe
    stages, continues = stage_plan(model, stages)
    owns_engine = engine is None
    engine = engine or Engine(recipe.train_config.device)
    try:
        run = Run.create(out, recipe, resume=resume or continues, overwrite=overwrite, engine=engine)
        return run.fit(model, engine, stages=stages, resume=resume, init_from=init_from, on_step=on_step,
                       dataset=user_dataset)
    finally:
        if owns_engine:
            engine.close()

"""Training a latent model into a run directory (what ``LDMI.fit`` and ``inrkit train ldmi`` call)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from inrkit.errors import ConfigError
from inrkit.recipe import Recipe
from inrkit.registry import spec_of
from inrkit.run_folder import CONFIG_FILE, SUMMARY_FILE, WEIGHTS_FILE
from inrkit.runs import Run, stage_plan
from inrkit.train import Engine
from inrkit.train import checkpoint as ckpt


def fit(model, data=None, out: str | Path = "runs/ldmi", stages: tuple[str, ...] | None = None,
        resume: bool = False, overwrite: bool = False, init_from: str | Path | None = None,
        engine: Engine | None = None, on_step=None, **train_overrides) -> dict[str, Any]:
    """Train ``model`` (an LDMI) into the run directory ``out``; returns the run summary.

    ``data``: None (the config's data section), a path (read by the domain's dataset), or a
    ``Dataset`` of model-space grids (then no held-out metrics). ``train_overrides`` merge into
    the train section, e.g. ``vae={"steps": 100}, log_every=1``. ``stages`` without the first
    stage continues an existing run from its earlier stages' newest checkpoints (or from
    ``init_from``: a run directory or a weights file). ``resume="older"`` resumes past corrupt
    newest checkpoints (they are renamed ``corrupt-checkpoint-...``) from the newest intact ones;
    with ``resume=True`` a corrupt one is an error before anything of the run is rewritten.
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


def check_prior_trained(run: Run, model, weights: str) -> None:
    """Refuse to sample from weights of ``run`` whose latent prior was never trained (a ``vae``
    checkpoint, or a run trained with ``--stage vae`` only), naming the weights that do hold a
    trained prior."""
    from .hyper_transform import is_hyper_transform_run

    if "prior" not in model.stages or is_hyper_transform_run(run.config):
        return  # the standard-normal prior needs no training; a hyper-transform run's comes trained from its source
    run_dir = run.path
    name = Path(str(weights)).name
    summary_file = run_dir / SUMMARY_FILE
    trained_stages = None
    if summary_file.is_file():
        try:
            import json

            trained_stages = set(json.loads(summary_file.read_text()).get("stages", {}))
        except (OSError, ValueError):
            trained_stages = None
    stage = ckpt.checkpoint_stage(name)
    if stage is not None:
        untrained = stage != "prior"
        what = f"checkpoint '{name}' was saved during stage '{stage}', before the prior was trained"
    elif weights in ("final", "ema"):
        untrained = trained_stages is not None and "prior" not in trained_stages
        what = f"{run_dir / WEIGHTS_FILE} comes from a run whose prior stage never ran"
    else:
        return  # a file given by path: nothing says which stage wrote it
    if not untrained:
        return
    ref = ckpt.latest_checkpoint(run_dir, "prior")
    if ref is not None:
        fix = f"use --weights {ref.path.name} (or --weights final once the prior stage has finished)"
    elif trained_stages is not None and "prior" in trained_stages:
        fix = "use --weights final"
    else:
        fix = f"train it first: inrkit train ldmi --config {run_dir / CONFIG_FILE} --out {run_dir} --stage prior"
    raise ConfigError(f"{what}: its samples would come from an untrained prior; {fix}")

"""The Run: create/open a run directory, one weight loader, fit with an engine, the held-out split;
the trainer hands the end-of-stage hooks a context, and models carry no run state."""
from __future__ import annotations

import pytest
import torch

from conftest import toy_run_config
from inrkit.errors import CheckpointError, ConfigError
from inrkit.recipe import Recipe
from inrkit.runs import Run
from inrkit.train import Engine, StageContext


def test_create_fit_open_and_load(tmp_path):
    recipe = Recipe.from_config(toy_run_config(vae={"steps": 2, "batch_size": 4}, prior={"steps": 1, "batch_size": 4}))
    run = Run.create(tmp_path / "r", recipe)
    model = recipe.build_model()
    seen = []
    hook = model.after_stage

    def after_stage(stage, context):
        seen.append((stage, context))
        return hook(stage, context)

    model.after_stage = after_stage
    summary = run.fit(model, Engine("cpu"))
    assert summary["n_val"] == 3 and summary["stages"]["vae"]["heldout"]["n_items"] == 3
    (stage, context), = seen[:1]
    assert isinstance(context, StageContext) and context.run_dir == run.path and len(context.heldout) == 3
    assert context.config.n_renders == 2
    assert not hasattr(model, "run_dir") and not hasattr(model, "run_config") and not hasattr(model, "_eval_data")

    opened = Run.open(tmp_path / "r")
    assert opened.config == recipe.config
    loaded = opened.load_model(device="cpu")
    assert not hasattr(loaded, "run_dir") and not hasattr(loaded, "run_config")
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value.cpu()), key
    val = opened.dataset("val")
    assert len(val) == 3 and torch.equal(val[0], recipe.dataset("val")[0])
    assert opened.data_path() is None and opened.data_path("/x") == "/x"


def test_create_refuses_and_resumes(tmp_path):
    recipe = Recipe.from_config(toy_run_config())
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="already exists"):
        Run.create(tmp_path / "mine", recipe)
    with pytest.raises(CheckpointError, match="not an inrkit run"):
        Run.create(tmp_path / "mine", recipe, resume=True)
    with pytest.raises(CheckpointError, match="not found"):
        Run.open(tmp_path / "missing")
    Run.create(tmp_path / "r", recipe).fit(recipe.build_model(), Engine("cpu"), stages=("vae",))
    other = Recipe.from_config(toy_run_config() | {"model": {**toy_run_config()["model"],
                                                             "inr": {"name": "siren", "width": 8, "depth": 2}}})
    with pytest.raises(ConfigError, match="different model: model.inr.width"):
        Run.create(tmp_path / "r", other, resume=True)
    # speed settings (runtime fields: the SIREN's kernel and tiles) may change when a run continues
    faster = Recipe.from_config(toy_run_config() | {"model": {**toy_run_config()["model"], "inr": {
        "name": "siren", "width": 16, "depth": 2, "kernel": "torch", "tiles": {"forward": {"BM": 64}}}}})
    assert {"inr.kernel", "inr.tiles"} <= faster.model_config.runtime_paths()
    Run.create(tmp_path / "r", faster, resume=True).release()


def test_evaluate_run_in_the_library_and_sample_metrics_through_the_domain(tmp_path):
    """``inrkit evaluate`` is inrkit_ldmi.evaluate.evaluate_run; a domain's sample metrics are its hook."""
    import json
    import shutil
    from pathlib import Path

    from inrkit.domain import Domain
    from inrkit_ldmi.evaluate import evaluate_run

    run = tmp_path / "run"
    shutil.copytree(Path(__file__).parent / "fixtures" / "runs" / "toy-ldmi", run)
    result = evaluate_run(run, n_samples=2, ddim_steps=1, device="cpu")
    assert result["samples"]["status"] == "no sample metrics for the 'toy_grid' modality"
    assert json.loads((run / "eval.json").read_text())["reconstruction"]["n_items"] == 3
    with pytest.raises(ConfigError, match="needs --n-samples"):
        evaluate_run(run, features=tmp_path / "f.pt")
    assert Domain.load_sample_features(None, None) is None
    with pytest.raises(ConfigError, match="no sample metric that uses a feature network"):
        evaluate_run(run, n_samples=2, features=tmp_path / "f.pt")  # refused, not silently ignored

    from inrkit_modalities.image.domain import ImageDomain, ImageDomainConfig

    image = ImageDomain(ImageDomainConfig(resolution=8, channels=1))
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    assert image.sample_metrics(x, x)["fid"] is None  # no feature network: unavailable, never made up

"""One ``train ldmi`` run resolves its configuration once and builds each part once (#14)."""
from __future__ import annotations

import pytest
import yaml

from conftest import count_parts, run_cli, toy_run_config


def test_train_ldmi_resolves_once_and_builds_each_part_once(tmp_path):
    config = tmp_path / "toy.yaml"
    config.write_text(yaml.safe_dump(toy_run_config()))
    with count_parts() as (validated, built):
        code = run_cli(["train", "ldmi", "--config", str(config), "--out", str(tmp_path / "run"), "--device", "cpu"])
    assert code == 0
    assert validated[("models", "ldmi")] == 1  # the recipe's one resolution
    parts = [("domains", "toy_grid"), ("encoders", "conv2d"), ("inrs", "siren"), ("hypernets", "hd"),
             ("priors", "diffusion"), ("likelihoods", "gaussian")]
    for part in parts:
        assert validated[part] == 1, (part, validated)
        assert built[part] == 1, (part, built)
    assert validated[("datasets", "toy_bumps")] == 1
    assert built[("datasets", "toy_bumps")] == 2  # the train and the held-out split, once each


def test_ldm_recipe_is_derived_from_ldmi_by_its_registered_transform():
    from inrkit.recipe import Recipe, recipe_kind

    ldmi = Recipe.resolve("ldmi", "tiny", modality="image")
    ldm = Recipe.resolve("ldm", "tiny", modality="image", overrides=["model.decoder.name=conv2d", "model.decoder.base_channels=4"])
    assert recipe_kind("ldm").base == "ldmi"
    assert "inr" not in ldm.config["model"] and "hypernet" not in ldm.config["model"]
    for section in ("domain", "encoder", "prior", "likelihood"):
        assert ldm.config["model"][section] == ldmi.config["model"][section]
    assert ldm.config["train"] == ldmi.config["train"] and ldm.config["data"] == ldmi.config["data"]
    assert ldm.config["model"]["decoder"]["base_channels"] == 4


def test_recipe_resolves_presets_files_data_and_sets_in_order(tmp_path):
    from inrkit.errors import ConfigError, InrkitError
    from inrkit.recipe import Recipe

    file = tmp_path / "c.yaml"
    file.write_text(yaml.safe_dump({"train": {"vae": {"steps": 7, "lr": 0.5}}, "data": {"n_items": 5}}))
    recipe = Recipe.resolve("ldmi", "tiny", file, None, ["train.vae.steps=9"], modality="image")
    assert recipe.config["train"]["vae"]["steps"] == 9 and recipe.config["train"]["vae"]["lr"] == 0.5
    assert recipe.train_config.vae.steps == 9 and recipe.config["data"]["n_items"] == 5
    assert len(recipe.dataset("train")) + len(recipe.dataset("val")) == 5
    assert Recipe.from_config(recipe.config).config == recipe.config
    with pytest.raises(InrkitError, match="no recipe for model 'ldmx'"):
        Recipe.resolve("ldmx", "tiny", modality="image")
    other = tmp_path / "ldm.yaml"
    other.write_text(yaml.safe_dump({"model": {"name": "ldm"}}))
    with pytest.raises(ConfigError, match="model.name is 'ldm', not ldmi"):
        Recipe.resolve("ldmi", "tiny", other, modality="image")

"""Registries and run configs: names, closest matches, strict fields, --set, plugins, presets."""
from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest
import torch

import inrkit
import inrkit.registry as reg
from inrkit.errors import ConfigError, InrkitError
from inrkit.registry import PartConfig
from inrkit.config import apply_overrides
from inrkit_ldmi.presets import available_presets, load_preset

from conftest import ToyGrid, recipe_config, resolved, toy_run_config


def test_unknown_name_names_the_closest_match():
    with pytest.raises(InrkitError) as err:
        inrkit.get_registry("hypernets").get("hdd")
    msg = str(err.value)
    assert "Did you mean 'hd'" in msg and "mlp" in msg and "\n" not in msg
    with pytest.raises(InrkitError, match="Did you mean 'hypernets'"):
        inrkit.get_registry("hypernet")


def test_the_registry_module_and_get_registry_each_have_a_name():
    """``inrkit.registry`` is the module; the function that returns one registry is ``get_registry``."""
    assert inrkit.registry is reg and isinstance(reg.PartConfig, type)
    assert inrkit.get_registry is reg.get_registry and inrkit.get_registry("inrs") is reg.inrs
    assert inrkit.list_parts("inrs") == reg.inrs.names() and "get_registry" in inrkit.__all__


def test_unknown_part_in_a_run_config_names_the_field():
    cfg = apply_overrides(toy_run_config(), ["model.hypernet.name=hdd"])
    with pytest.raises(ConfigError, match=r"model\.hypernet: unknown hypernet 'hdd'.*Did you mean 'hd'"):
        resolved(cfg)


@pytest.mark.parametrize("override, field, bad", [
    ("model.hypernet.dimm=3", "model.hypernet", "dimm"),
    ("model.encoder.latent_chanels=4", "model.encoder", "latent_chanels"),
    ("train.vae.stepz=3", "train", "vae.stepz"),
    ("data.n_itemz=3", "data", "n_itemz"),
    ("trian.seed=1", "config", "trian"),
])
def test_misspelt_field_is_an_error_naming_it(override, field, bad):
    cfg = apply_overrides(toy_run_config(), [override])
    with pytest.raises(ConfigError) as err:
        resolved(cfg)
    msg = str(err.value)
    assert msg.startswith(field + ":") and f"unknown field '{bad}'" in msg and "\n" not in msg


def test_wrong_value_type_is_an_error():
    with pytest.raises(ConfigError, match=r"train: 'vae.steps'='many'"):
        resolved(apply_overrides(toy_run_config(), ["train.vae.steps=many"]))
    with pytest.raises(ConfigError, match="batch_size"):
        resolved(apply_overrides(toy_run_config(), ["train.prior.batch_size=0"]))


def test_set_parses_yaml_values_and_changing_a_name_drops_old_fields():
    cfg = apply_overrides({"a": {"b": 1}}, ["a.b=3", "a.c=1e-4", "a.d=true", "a.e=[2, 4]", "a.f=siren", "x.y.z=null"])
    assert cfg == {"a": {"b": 3, "c": 1e-4, "d": True, "e": [2, 4], "f": "siren"}, "x": {"y": {"z": None}}}
    cfg = resolved(apply_overrides(toy_run_config(), ["model.hypernet.name=mlp", "model.hypernet.hidden=[32]"]))
    assert cfg["model"]["hypernet"]["name"] == "mlp" and cfg["model"]["hypernet"]["hidden"] == [32]
    assert "dim" not in cfg["model"]["hypernet"]
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["novalue"])


def test_resolution_fills_inr_dims_and_the_domains_likelihood():
    cfg = resolved(toy_run_config())
    assert (cfg["model"]["inr"]["in_dim"], cfg["model"]["inr"]["out_dim"]) == (2, 1)
    assert cfg["model"]["inr"]["w0"] == 30.0  # defaults written out: the stored config is complete
    cfg = resolved(apply_overrides(toy_run_config(), ["model.likelihood=null"]))
    assert cfg["model"]["likelihood"]["name"] == ToyGrid.default_likelihood
    with pytest.raises(ConfigError, match=r"model\.inr\.in_dim=3 does not match"):
        resolved(apply_overrides(toy_run_config(), ["model.inr.in_dim=3"]))
    assert resolved(cfg) == cfg  # resolving is idempotent


def test_data_split_is_the_trainers_choice():
    with pytest.raises(ConfigError, match="data.split"):
        resolved(apply_overrides(toy_run_config(), ["data.split=val"]))


def test_duplicate_registration_is_refused():
    class Other(ToyGrid):
        pass

    with pytest.raises(ValueError, match="already registered"):
        inrkit.get_registry("domains").register("toy_grid", config=PartConfig)(Other)
    # Registering the same class again (a re-imported module) is harmless.
    entry = inrkit.get_registry("domains").get("toy_grid")
    inrkit.get_registry("domains").register("toy_grid", config=entry.config)(ToyGrid)


def test_plugins_load_through_entry_points(monkeypatch):
    calls = []

    def hook():
        calls.append(1)

        @inrkit.get_registry("inrs").register("plugin_probe_inr", config=PartConfig, description="from a plugin")
        class Probe:
            def __init__(self, config):
                self.config = config

    import types
    import sys

    module = types.ModuleType("fake_inrkit_plugin")
    module.register = hook
    monkeypatch.setitem(sys.modules, "fake_inrkit_plugin", module)
    ep = EntryPoint(name="fake", value="fake_inrkit_plugin:register", group="inrkit.plugins")
    monkeypatch.setattr(reg, "entry_points", lambda group: [ep] if group == "inrkit.plugins" else [])
    monkeypatch.setattr(reg, "_plugins_loaded", False)
    try:
        assert "plugin_probe_inr" in inrkit.get_registry("inrs").names()
        inrkit.get_registry("inrs").names()
        assert calls == [1]  # loaded once
        assert inrkit.build("inrs", "plugin_probe_inr").config == PartConfig()
    finally:
        inrkit.get_registry("inrs")._entries.pop("plugin_probe_inr", None)


def test_a_broken_plugin_is_a_one_line_error(monkeypatch):
    ep = EntryPoint(name="broken", value="no_such_module_for_inrkit:register", group="inrkit.plugins")
    monkeypatch.setattr(reg, "entry_points", lambda group: [ep])
    monkeypatch.setattr(reg, "_plugins_loaded", False)
    with pytest.raises(InrkitError, match="plugin 'broken'.*failed to load"):
        inrkit.get_registry("inrs").names()


def test_presets_exist_for_every_modality_and_unknown_ones_are_named():
    known = available_presets()
    for modality in ("image", "sphere", "occupancy"):
        assert {"paper", "tiny"} <= set(known[modality])
    with pytest.raises(ConfigError, match="unknown preset 'nope' for modality 'sphere'; known: inrkit-v1, paper, tiny"):
        load_preset("sphere", "nope")
    with pytest.raises(ConfigError, match="Did you mean 'image'"):
        load_preset("images", "paper")


@pytest.mark.parametrize("modality", ["image", "sphere", "occupancy"])
def test_every_preset_resolves(modality):
    for preset in available_presets()[modality]:
        cfg = recipe_config("ldmi", modality, preset)
        assert cfg["model"]["domain"]["name"] == modality
        assert cfg["model"]["hypernet"]["name"] == ("mlp" if preset.startswith("gasp") else "hd")


def test_paper_image_preset_matches_the_papers_sizes():
    from inrkit_ldmi.model import LDMI

    model = LDMI.from_config(recipe_config("ldmi", "image", "paper"))
    assert model.latent_shape == (3, 16, 16)
    assert model.inr.num_params == 198_915
    assert model.hypernet.n_weight_tokens == 259
    assert model.likelihood.registry_name == "l1_lpips_patchgan"
    assert LDMI.from_config(recipe_config("ldmi", "image", "inrkit-v1")).likelihood.config.sigma == 0.1


def test_sphere_paper_preset_latent_and_inr():
    cfg = recipe_config("ldmi", "sphere", "paper")
    inr = inrkit.build("inrs", cfg["model"]["inr"].pop("name"), **cfg["model"]["inr"])
    assert (inr.in_dim, inr.out_dim) == (3, 1) and inr.num_params == 198_657
    from inrkit_ldmi.config import build_part

    domain = build_part("domains", cfg["model"]["domain"])
    enc = build_part("encoders", cfg["model"]["encoder"], in_channels=1, grid_shape=domain.grid_shape)
    assert tuple(enc.latent_shape) == (3, 11, 22)


def test_data_path_replaces_the_builtin_datasets_fields(tmp_path):
    from PIL import Image
    import numpy as np

    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), 40 * i, dtype=np.uint8)).save(tmp_path / f"{i}.png")
    cfg = recipe_config("ldmi", "image", "tiny", data=tmp_path)
    assert cfg["data"] == {"path": str(tmp_path)}
    with pytest.raises(ConfigError, match="data.path"):
        recipe_config("ldmi", "image", "tiny", data=tmp_path / "missing")


@pytest.mark.parametrize("name", ["image", "occupancy", "sphere"])
def test_every_domain_samples_distinct_random_grid_points(name):
    """``Domain.sample(n)``: n distinct grid points (coordinates and flat indices), reproducible
    from a generator, at the training grid or another resolution; n ≥ the grid's size gives all."""
    import inrkit

    domain = inrkit.build("domains", name)
    grid = domain.grid()
    coords, idx = domain.sample(50, generator=torch.Generator().manual_seed(0))
    assert coords.shape == (50, domain.coord_dim) and idx.shape == (50,)
    assert len(set(idx.tolist())) == 50 and torch.equal(coords, grid[idx])
    again, idx2 = domain.sample(50, generator=torch.Generator().manual_seed(0))
    assert torch.equal(idx, idx2) and torch.equal(coords, again)
    other, _ = domain.sample(50, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(coords, other)
    every, all_idx = domain.sample(10**9)
    assert torch.equal(every, grid) and torch.equal(all_idx, torch.arange(grid.shape[0]))
    res = 5 if name != "sphere" else (6, 12)
    fine, fidx = domain.sample(7, resolution=res)
    assert torch.equal(fine, domain.grid(res)[fidx])
    with pytest.raises(ConfigError, match="at least 1"):
        domain.sample(0)

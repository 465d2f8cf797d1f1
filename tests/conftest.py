"""Shared fixtures, and a test plugin: a toy 2D domain with its built-in dataset.

The toy parts register exactly as a third-party plugin would (registry decorators, nothing in
inrkit names them), so every test that trains on them also checks the plugin path.
"""
from __future__ import annotations

import contextlib
import importlib.util
from pathlib import Path

import numpy as np
import pydantic
import pytest
import torch
from torch.utils.data import Dataset

from inrkit.data import split_indices
from inrkit.domain import Domain
from inrkit.errors import DataError
from inrkit.registry import PartConfig, datasets, domains

# GRIB tests need the 'grib' extra (cfgrib, eccodes, eccodeslib), which `make test` installs through
# the test extra: they skip only where someone runs pytest without it.
needs_grib = pytest.mark.skipif(
    importlib.util.find_spec("cfgrib") is None or importlib.util.find_spec("eccodes") is None,
    reason="the 'grib' extra (cfgrib, eccodes, eccodeslib) is not installed; `make test` installs it")


class ToyGridConfig(PartConfig):
    size: int = pydantic.Field(8, ge=2)
    channels: int = pydantic.Field(1, ge=1)


def _centres(n: int) -> torch.Tensor:
    return (torch.arange(n, dtype=torch.float32) * 2 + 1) / n - 1


@domains.register("toy_grid", config=ToyGridConfig, description="test plugin: a small square grid")
class ToyGrid(Domain):
    coord_dim = 2
    default_likelihood = "gaussian"
    builtin_dataset = "toy_bumps"

    def __init__(self, config: ToyGridConfig):
        self.config = config
        self.channels = config.channels
        self.grid_shape = (config.size, config.size)

    def grid(self, resolution=None) -> torch.Tensor:
        h, w = self.resolve_resolution(resolution)
        ys, xs = torch.meshgrid(_centres(h), _centres(w), indexing="ij")
        return torch.stack([ys.reshape(-1), xs.reshape(-1)], -1)

    def metrics(self, pred, target):
        mse = (pred - target).pow(2).flatten(1).mean(1)
        return {"mse": mse, "psnr": -10 * torch.log10(mse.clamp_min(1e-10) / 4)}

    def render(self, grids, out_dir, stem="samples", meta=None):
        path = Path(out_dir) / f"{stem}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, grids.detach().cpu().numpy())
        return [path]

    def dataset_for(self, path):
        raise DataError(f"toy_grid reads no files ({path})")


class ToyBumpsConfig(PartConfig):
    n_items: int = pydantic.Field(12, ge=1)
    split: str = "train"
    val_fraction: float = 0.25
    seed: int = 0


@datasets.register("toy_bumps", config=ToyBumpsConfig, description="test plugin: smooth Gaussian bumps")
class ToyBumps(Dataset):
    """One smooth bump per item at a seeded position: easy to fit, different per item."""

    def __init__(self, config: ToyBumpsConfig, domain):
        g = torch.Generator().manual_seed(config.seed)
        coords = domain.grid()
        centres = torch.rand(config.n_items, 1, 2, generator=g) * 1.2 - 0.6
        d2 = (coords[None] - centres).pow(2).sum(-1)
        values = 1.6 * torch.exp(-d2 / 0.3) - 0.8  # in [-0.8, 0.8]
        items = values.reshape(config.n_items, 1, *domain.grid_shape).repeat(1, domain.channels, 1, 1)
        idx = split_indices(config.n_items, config.split, config.val_fraction, config.seed)
        self.items = items[torch.as_tensor(idx)]
        self.meta = {"source": "toy_bumps", "n_items": len(idx)}

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def cli(args, capsys=None) -> tuple[int, str, str]:
    """Run the ``inrkit`` CLI in-process on ``args`` (any objects, passed as strings): (exit code,
    stdout, stderr). With pytest's ``capsys`` the output is this command's alone (what was printed
    before is dropped); without it both are empty."""
    from inrkit_cli.main import main

    if capsys is not None:
        capsys.readouterr()
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr() if capsys is not None else ("", "")
    return code, out, err


def run_cli(args) -> int:
    """:func:`cli`'s exit code alone."""
    return cli(args)[0]


def one_line_error(code: int, err: str, *needles: str) -> str:
    """A user error as the CLI must print it: exit code 2 and stderr one line ``error: ...`` (no
    traceback) holding every needle; returns that line."""
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def error_line(err: str) -> str:
    """The one ``error:`` line of stderr (warnings may stand beside it), no traceback."""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def toy_run_config(**train) -> dict:
    """A tiny LDMI run config on the toy grid (seconds to train on one core)."""
    return {
        "model": {
            "name": "ldmi",
            "domain": {"name": "toy_grid", "size": 8},
            "encoder": {"name": "conv2d", "base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1,
                        "latent_channels": 2, "mid_attention": False},
            "inr": {"name": "siren", "width": 16, "depth": 2},
            "hypernet": {"name": "hd", "dim": 16, "encoder_depth": 1, "decoder_depth": 1, "n_heads": 2, "head_dim": 8,
                         "ff_dim": 32, "patch_size": 2, "tokenizer_heads": 2, "tokenizer_head_dim": 8, "n_groups": 8},
            "prior": {"name": "diffusion", "model_channels": 8, "channel_mult": [1], "num_res_blocks": 1,
                      "attention": False, "ema_decay": 0.9},
            "likelihood": {"name": "gaussian", "sigma": 0.1},
        },
        "data": {"path": None, "n_items": 12},
        "train": {
            "vae": {"steps": 6, "batch_size": 4, "lr": 3e-3},
            "prior": {"steps": 4, "batch_size": 4, "lr": 1e-3},
            "log_every": 2, "checkpoint_every": 3, "progress": False, "tensorboard": False,
            "sample_steps": 3, "n_renders": 2, **train,
        },
    }


@pytest.fixture
def toy_config():
    return toy_run_config


@contextlib.contextmanager
def count_parts():
    """Counts every registry validation of a spec and every construction of a part, by (kind,
    name), while the block runs: ``with count_parts() as (validated, built): ...``."""
    import collections

    from inrkit.registry import Registry

    validated, built = collections.Counter(), collections.Counter()
    validate, create = Registry.validate, Registry.create

    def counting_validate(self, spec, name=None):
        if not isinstance(spec, PartConfig):  # an already validated config passes through unchecked
            validated[self.kind, (spec or {}).get("name", name)] += 1
        return validate(self, spec, name)

    def counting_create(self, name, config, context=None):
        built[self.kind, name] += 1
        return create(self, name, config, context)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Registry, "validate", counting_validate)
        mp.setattr(Registry, "create", counting_create)
        yield validated, built


def resolved(config: dict) -> dict:
    """A plain run config resolved by its recipe (what config.yaml stores)."""
    from inrkit.recipe import Recipe

    return Recipe.from_config(config).config


def recipe_config(model: str, modality: str | None = None, preset: str | None = None, overrides=None,
                  config_file=None, data=None) -> dict:
    """``Recipe.resolve(...)``'s plain config for ``model`` (ldmi or ldm)."""
    from inrkit.recipe import Recipe

    return Recipe.resolve(model, preset, config_file, data, overrides, modality=modality).config


@pytest.fixture(autouse=True, scope="session")
def _user_cache_in_tmp(tmp_path_factory):
    """Caches that default to the user cache directory (voxelised meshes) stay out of $HOME in tests."""
    import os

    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("user-cache"))
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old

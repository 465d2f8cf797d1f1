"""Conditional generation: guided completion of partial observations, finer rendering, masks, the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from inrkit.data import open_dataset
from inrkit.errors import ConfigError
from inrkit_ldmi.inpaint import inpaint, make_mask
from inrkit_ldmi.model import LDMI

from conftest import cli, one_line_error, toy_run_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A toy run trained long enough that its decoder reconstructs and its prior samples latents."""
    cfg = toy_run_config(vae={"steps": 200, "batch_size": 4, "lr": 3e-3},
                         prior={"steps": 400, "batch_size": 8, "lr": 1e-3})
    cfg["data"]["n_items"] = 40
    run = tmp_path_factory.mktemp("inpaint") / "run"
    model = LDMI.from_config(cfg)
    model.fit(out=run)
    val = open_dataset(model.domain, None, split="val", n_items=40)
    x = torch.stack([val[i] for i in range(len(val))]).float()
    return run, model, x


def _errors(pred, x, mask, n=1):
    x = x.repeat_interleave(n, 0)
    cells = mask.expand_as(x)
    err = (pred - x).pow(2)
    return float(err[cells].mean()), float(err[~cells].mean())


def test_guidance_matches_the_observed_cells(trained):
    _, model, x = trained
    mask = make_mask("left", x.shape[2:])
    observed = torch.where(mask, x, torch.zeros_like(x))
    kw = dict(steps=10, seed=0, clip=2.0, n=4)
    free = _errors(inpaint(model, observed, mask, guidance=0.0, **kw), x, mask, 4)
    guided = _errors(model.inpaint(observed, mask, guidance=1.0, **kw), x, mask, 4)
    print(f"observed-cell mse: unguided {free[0]:.4f}, guided {guided[0]:.4f}")
    assert guided[0] < 0.65 * free[0], (free, guided)


def test_finer_resolution_and_determinism(trained):
    _, model, x = trained
    x = x[:2]
    mask = make_mask("random:0.5", x.shape[2:], seed=1)
    a = model.inpaint(x, mask, resolution=16, steps=3, seed=7, n=2)
    assert a.shape == (4, 1, 16, 16) and torch.isfinite(a).all()
    assert torch.equal(a, model.inpaint(x, mask, resolution=16, steps=3, seed=7, n=2))
    assert not torch.equal(a, model.inpaint(x, mask, resolution=16, steps=3, seed=8, n=2))
    # The same seed decoded on the data grid: the first completion of each item at 8x8.
    assert model.inpaint(x, mask[None, None].expand(2, 1, 8, 8), steps=3, seed=7, n=2).shape == (4, 1, 8, 8)


def test_mask_kinds():
    assert make_mask("left", (4, 6))[:, :3].all() and not make_mask("left", (4, 6))[:, 3:].any()
    assert make_mask("right", (4, 6)).sum() == 12 and make_mask("right", (4, 6))[:, 5].all()
    assert torch.equal(make_mask("top", (4, 6)), make_mask("north", (4, 6))) and make_mask("top", (4, 6))[:2].all()
    assert make_mask("bottom", (4, 6))[2:].all() and not make_mask("bottom", (4, 6))[:2].any()
    assert make_mask("centre", (8, 8)).sum() == 16 and make_mask("centre", (8, 8))[2:6, 2:6].all()
    box = make_mask("box:1,3,0,5", (4, 6))
    assert box.sum() == 10 and box[1:3, :5].all()
    half = make_mask("half", (4, 4, 4))
    assert half.shape == (4, 4, 4) and half[:2].all() and not half[2:].any()
    r = make_mask("random:0.25", (10, 10), seed=3)
    assert r.sum() == 25 and torch.equal(r, make_mask("random:0.25", (10, 10), seed=3))
    assert not torch.equal(r, make_mask("random:0.25", (10, 10), seed=4))
    for bad, shape in [("diagonal", (4, 4)), ("random:2", (4, 4)), ("box:0,9,0,2", (4, 4)), ("half", (4, 4)),
                       ("left", (4, 4, 4)), ("box:1,2", (4, 4))]:
        with pytest.raises(ConfigError):
            make_mask(bad, shape)


def test_cli_end_to_end_and_bad_input(trained, tmp_path, capsys):
    run, _, _ = trained
    out = tmp_path / "inp"
    code, stdout, err = cli(["inpaint", run, "--index", 1, "--count", 2, "--mask", "top", "--n", 2,
                             "--resolution", 12, "--ddim-steps", 3, "--seed", 5, "--out", out], capsys)
    assert code == 0, err
    assert "mse observed" in stdout
    result = json.loads((out / "inpaint.json").read_text())
    assert result["mask"] == "top" and result["observed_fraction"] == 0.5 and result["seed"] == 5
    assert result["resolution"] == [12, 12] and result["mse_observed"] >= 0 and result["mse_unobserved"] >= 0
    assert set(result["metrics"]) == {"mse", "psnr"}
    assert np.load(out / "completions-12x12-seed5.npy").shape == (4, 1, 12, 12)
    observed, targets = np.load(out / "observed-top.npy"), np.load(out / "targets.npy")
    assert observed.shape == targets.shape == (2, 1, 8, 8)
    assert np.array_equal(observed[:, :, :4], targets[:, :, :4]) and not observed[:, :, 4:].any()

    one_line_error(*cli(["inpaint", run, "--mask", "diagonal"], capsys)[::2], "unknown mask kind 'diagonal'")
    one_line_error(*cli(["inpaint", run, "--index", 99], capsys)[::2], "--index 99", "held-out split")
    one_line_error(*cli(["inpaint", tmp_path / "no-run"], capsys)[::2], "run directory not found")

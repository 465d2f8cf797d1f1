"""Runs written before the recipe/run redesign (#14) still load, sample, evaluate and resume.

tests/fixtures/runs/ holds a toy LDMI run and a toy LDM run written by the code of commit
eabfac0 (tests/fixtures/make_runs.py says how); they are never regenerated.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from inrkit import load_run
from inrkit.io import load_tensors
from inrkit.runs import read_run_config

from conftest import resolved, run_cli

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "runs"


@pytest.mark.parametrize("name", ["toy-ldmi", "toy-ldm"])
def test_old_run_loads_with_its_weights_and_reproduces_its_reconstructions(name):
    run = FIXTURES / name
    model = load_run(run, device="cpu")
    saved = load_tensors(run / "model.safetensors")
    state = model.state_dict()
    assert set(saved) == set(state)
    for key, value in saved.items():
        assert torch.equal(state[key], value), key
    # the reconstructions rendered at the end of training come back from the reloaded model
    targets = torch.from_numpy(np.load(run / "reconstructions" / "after-prior" / "targets.npy"))
    recorded = torch.from_numpy(np.load(run / "reconstructions" / "after-prior" / "reconstructions.npy"))
    assert torch.allclose(model.reconstruct(targets), recorded, atol=1e-5)
    assert model.sample(2, steps=2, seed=0).shape == (2, 1, 8, 8)


def keeps(resolved_config, stored, where=""):
    """Every stored field keeps its value (fields added since get their defaults)."""
    if isinstance(stored, dict):
        for key, value in stored.items():
            assert key in resolved_config, f"{where}.{key} is gone"
            keeps(resolved_config[key], value, f"{where}.{key}")
    else:
        assert resolved_config == stored, where


def test_old_run_config_resolves_to_itself():
    for name in ("toy-ldmi", "toy-ldm"):
        config = read_run_config(FIXTURES / name)
        keeps(resolved(config), config)
        assert resolved(resolved(config)) == resolved(config)


def test_old_run_loads_its_ema_and_checkpoint_weights():
    run = FIXTURES / "toy-ldmi"
    ema = load_run(run, device="cpu", weights="ema")
    assert ema.sample(1, steps=2, seed=0).shape == (1, 1, 8, 8)
    ckpt = load_run(run, device="cpu", weights="checkpoint-vae-2")
    saved = load_tensors(run / "checkpoints" / "checkpoint-vae-2" / "model.safetensors")
    assert torch.equal(ckpt.state_dict()["encoder.conv_in.weight"], saved["encoder.conv_in.weight"])


def test_old_run_resumes_with_more_steps(tmp_path):
    from inrkit_ldmi.model import LDMI

    run = tmp_path / "run"
    shutil.copytree(FIXTURES / "toy-ldmi", run)
    config = read_run_config(run)
    config["train"]["prior"]["steps"] = 3
    summary = LDMI.from_config(config).fit(out=run, resume=True)
    assert summary["stages"]["vae"]["trained_steps"] == 0 and summary["stages"]["vae"]["steps"] == 2
    assert summary["stages"]["prior"]["resumed_from"] == 2 and summary["stages"]["prior"]["steps"] == 3


def test_cli_samples_and_evaluates_an_old_run(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(FIXTURES / "toy-ldmi", run)
    assert run_cli(["sample", str(run), "--n", "2", "--ddim-steps", "2", "--seed", "0", "--out", str(tmp_path / "s"),
                    "--device", "cpu"]) == 0
    assert (tmp_path / "s" / "samples-8x8-seed0.npy").is_file()
    assert run_cli(["evaluate", str(run), "--device", "cpu"]) == 0
    result = json.loads((run / "eval.json").read_text())
    assert result["reconstruction"]["n_items"] == 3 and "psnr" in result["reconstruction"]

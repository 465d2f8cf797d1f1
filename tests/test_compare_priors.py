"""``inrkit compare --priors``: one frozen stage 1, stage 2 per prior and seed, runs that differ only
under model.prior, the report's numbers, resume, bad input; and the set distances it reports."""
import json
import math

import numpy as np
import pytest
import torch
import yaml

import inrkit
from conftest import run_cli
from inrkit.distances import frechet_distance, nn_distances, set_frechet_distance
from inrkit.io import load_tensors
from inrkit_ldmi import compare_priors as cp
from test_compare import differing  # the hypernet comparison's independent config diff

TINY = ["model.domain.resolution=8", "model.encoder.base_channels=8", "data.n_items=20", "train.vae.batch_size=2",
        "train.vae.steps=3", "train.prior.batch_size=4", "train.n_renders=2", "train.sample_steps=1",
        "train.progress=false", "train.tensorboard=false", "prior.diffusion.model_channels=8", "prior.flow.hidden=16",
        "prior.flow.n_layers=2"]
PRIORS = ["gaussian", "flow", "diffusion"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    out = tmp_path_factory.mktemp("priors") / "cmp"
    args = ["compare", "--priors", ",".join(PRIORS), "-m", "image", "--preset", "tiny", "--budget-steps", "3",
            "--seeds", "2", "--sample-steps", "2", "--out", str(out)]
    for item in TINY:
        args += ["--set", item]
    assert run_cli(args) == 0
    return out


def test_report_holds_every_prior_and_its_numbers(compared):
    report = json.loads((compared / "compare.json").read_text())
    assert report["axis"] == "model.prior" and report["settings"]["priors"] == PRIORS
    assert report["settings"]["seeds"] == [0, 1] and report["stage1"]["steps_reached"] == 3
    rows = {r["prior"]: r for r in report["results"]}
    assert list(rows) == PRIORS and all(r["status"] == "ok" for r in rows.values())
    latent = inrkit.load_run(compared / "stage1", device="cpu").latent_shape
    for name, row in rows.items():
        built = inrkit.build("priors", name, context={"latent_shape": latent},
                             **{k: v for k, v in row["spec"].items() if k != "name"})
        assert row["prior_params"] == sum(p.numel() for p in built.parameters())
        assert [r["seed"] for r in row["runs"]] == [0, 1]
        assert row["sample_total_ms_per_item"]["mean"] >= row["sample_prior_ms_per_item"]["mean"] > 0
        for key in cp.QUALITY[:-1]:
            stat = row["quality"][key]
            assert stat["n"] == 2 and all(math.isfinite(v) and v >= 0 for v in stat["per_seed"]), (name, key)
        assert row["quality"]["fid"] is None and row["fid_status"].startswith("unavailable")
        assert all(r["sampling"]["n"] == report["n_heldout"] for r in row["runs"])
    assert rows["gaussian"]["prior_params"] == 0 and rows["gaussian"]["train_steps"]["mean"] == 0
    assert rows["gaussian"]["train_items_per_s"] is None and rows["gaussian"]["train_note"] == "nothing to train"
    for name in ("flow", "diffusion"):
        assert rows[name]["train_steps"]["mean"] == 3 and rows[name]["train_items_per_s"]["mean"] > 0
    assert rows["flow"]["spec"]["n_layers"] == 2 and rows["diffusion"]["spec"]["model_channels"] == 8
    ref = report["reference"]
    assert ref["what"].endswith("training items in place of samples") and ref["latent_frechet"] >= 0
    md = (compared / "compare.md").read_text()
    assert "| flow | ok |" in md and "| reference |" in md and "latent Fréchet" in md


def test_runs_differ_only_in_the_prior_and_share_the_frozen_stage1(compared):
    configs = {}
    for name in PRIORS:
        for seed in (0, 1):
            configs[name, seed] = yaml.safe_load((compared / f"{name}-seed{seed}" / "config.yaml").read_text())
    for seed in (0, 1):
        for a, b in (("gaussian", "flow"), ("flow", "diffusion"), ("gaussian", "diffusion")):
            diff = differing(configs[a, seed], configs[b, seed])
            assert diff and all(k.startswith("model.prior.") for k in diff), diff
    assert differing(configs["flow", 0], configs["flow", 1]) == ["train.seed"]
    stage1 = load_tensors(compared / "stage1" / "model.safetensors")
    shared = [k for k in stage1 if not k.startswith("prior.")]
    assert any(k.startswith("encoder.") for k in shared) and any(k.startswith("hypernet.") for k in shared)
    for name in PRIORS:
        for seed in (0, 1):
            weights = load_tensors(compared / f"{name}-seed{seed}" / "model.safetensors")
            for k in shared:
                assert torch.equal(weights[k], stage1[k]), (name, seed, k)
    # the two seeds of a trained prior start and train differently; each run is a normal run
    w0, w1 = (load_tensors(compared / f"flow-seed{s}" / "model.safetensors") for s in (0, 1))
    assert any(not torch.equal(w0[k], w1[k]) for k in w0 if k.startswith("prior."))
    model = inrkit.load_run(compared / "flow-seed1", device="cpu")
    assert type(model.prior).__name__ == "FlowPrior" and model.sample(2, seed=0).shape == (2, 1, 8, 8)
    assert not list(compared.glob(".*init.safetensors"))  # the temporary init files are gone


def test_resume_reuses_stage1_and_every_run(compared, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(cp, "train_one", no_training)
    monkeypatch.setattr(cp, "train_prior", no_training)
    before = json.loads((compared / "compare.json").read_text())
    logs = []
    report = cp.compare_priors(PRIORS, "image", preset="tiny", budget_steps=3, seeds=2, sample_steps=2, out=compared,
                               set_overrides=TINY, resume=True, log=logs.append)
    assert sum("reused" in line for line in logs) == 7
    assert report["results"][1]["quality"] == before["results"][1]["quality"]


@pytest.mark.parametrize("extra,needle", [
    (["--priors", "gaussian,flw"], "flw"),
    (["--priors", "gaussian,flow", "--hypernets", "hd"], "--hypernets"),
    (["--priors", "gaussian,flow", "--sweep", "inr.width=8,16"], "--sweep"),
    (["--priors", "gaussian,flow", "--budget-minutes", "1"], "--budget-minutes"),
    (["--priors", "gaussian,flow", "--set", "prior.diffusion.steps=3"], "diffusion"),
    (["--priors", "gaussian,flow", "--set", "prior.flow.n_layerz=3"], "n_layerz"),
    (["--priors", "gaussian,flow", "--fid-features", "nowhere.pt", "-m", "sphere"], "FID"),
    (["--priors", "gaussian,flow", "--set", "data.n_items=4"], "held-out"),
    (["--hypernets", "hd,mlp", "--n-samples", "4"], "--priors"),
])
def test_bad_input_is_refused_before_training(extra, needle, tmp_path, capsys):
    args = ["compare", "-m", "image", "--preset", "tiny", "--budget-steps", "1", "--seeds", "1",
            "--out", str(tmp_path / "bad"), *extra]
    capsys.readouterr()
    assert run_cli(args) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err, err
    assert not (tmp_path / "bad" / "stage1").exists()


def test_nearest_neighbour_distances_hand_computed():
    a = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    b = torch.tensor([[0.0, 1.0], [3.0, 0.0], [10.0, 10.0]])
    a_to_b, b_to_a = nn_distances(a, b)
    assert a_to_b == pytest.approx((1.0 + 4.0) / 2)
    assert b_to_a == pytest.approx((1.0 + 3.0 + math.hypot(7, 6)) / 3)
    assert nn_distances(a, b, rms=True)[0] == pytest.approx(2.5 / math.sqrt(2))
    assert nn_distances(a, b, chunk=1) == (a_to_b, b_to_a)


def test_set_frechet_distance_matches_the_moments():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(20000, 3, generator=g)
    b = torch.randn(10000, 3, generator=g) * 2 + 1
    want = frechet_distance(a.mean(0).numpy(), np.cov(a.numpy(), rowvar=False), b.mean(0).numpy(), np.cov(b.numpy(), rowvar=False))
    assert set_frechet_distance(a.view(20000, 3, 1), b.view(10000, 1, 3)) == pytest.approx(want)
    assert set_frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    # N(0, I) against N(1, 4I) in 3-D: 3·1² + 3·(1 + 4 − 2·2) = 6
    assert want == pytest.approx(6.0, abs=0.2)

"""LDMI on the toy grid plugin (conftest): training, sampling, run round trips."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import inrkit
from inrkit.data import open_dataset
from inrkit.errors import CheckpointError, ConfigError
from inrkit.train.logging import read_metrics
from inrkit.config import apply_overrides
from inrkit_ldmi.model import LDMI

from conftest import recipe_config, toy_run_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One short full run (both stages) shared by the read-only tests below."""
    out = tmp_path_factory.mktemp("run") / "toy"
    torch.manual_seed(0)
    model = LDMI.from_config(toy_run_config())
    summary = model.fit(out=out)
    return model, out, summary


def test_vae_loss_goes_down_and_beats_the_mean_predictor(tmp_path):
    cfg = toy_run_config(vae={"steps": 150, "batch_size": 8, "lr": 3e-3}, log_every=10, checkpoint_every=0)
    model = LDMI.from_config(cfg)
    model.fit(out=tmp_path / "run", stages=("vae",))
    losses = [r["nll"] for r in read_metrics(tmp_path / "run") if r["stage"] == "vae"]
    assert losses[-1] < losses[0] - 1.0
    train = open_dataset(model.domain, None, split="train", n_items=12)
    x = torch.stack([train[i] for i in range(len(train))])
    rec = model.reconstruct(x)
    mse_model = (rec - x).pow(2).mean()
    mse_mean = (x.mean(0, keepdim=True) - x).pow(2).mean()
    assert mse_model < 0.5 * mse_mean, (float(mse_model), float(mse_mean))


def test_run_directory_contents(trained):
    model, out, summary = trained
    for name in ("config.yaml", "run.json", "model.safetensors", "metrics.jsonl", "summary.json"):
        assert (out / name).is_file(), name
    assert (out / "samples" / "after-prior" / "samples.npy").is_file()
    assert (out / "reconstructions" / "after-vae" / "targets.npy").is_file()
    saved = json.loads((out / "summary.json").read_text())
    assert saved["stages"]["vae"]["steps"] == 6 and saved["stages"]["prior"]["steps"] == 4
    held = saved["stages"]["vae"]["heldout"]
    assert held["n_items"] == 3 and set(held["mse"]) == {"mean", "std"}
    config = inrkit.runs.read_run_config(out)
    assert config["schema_version"] == 1 and config["model"]["inr"]["in_dim"] == 2
    assert config["model"]["likelihood"] == {"name": "gaussian", "sigma": 0.1}
    # The prior was fitted on standardised latents of the frozen encoder.
    assert float(model.prior.scale_factor) != 1.0


def test_load_run_round_trip_gives_identical_samples(trained):
    model, out, _ = trained
    loaded = inrkit.load_run(out)
    assert type(loaded) is LDMI and not loaded.training
    a = model.sample(3, steps=4, seed=7)
    b = loaded.sample(3, steps=4, seed=7)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, loaded.sample(3, steps=4, seed=8))
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor.cpu(), loaded.state_dict()[name].cpu()), name


def test_weights_choices_of_load_run(trained):
    _, out, _ = trained
    vae_only = inrkit.load_run(out, weights="checkpoint-vae-6")
    final = inrkit.load_run(out)
    assert torch.equal(vae_only.encoder.conv_in.weight, final.encoder.conv_in.weight)
    assert not torch.equal(vae_only.prior.denoiser.state_dict()["conv_in.weight"],
                           final.prior.denoiser.state_dict()["conv_in.weight"])
    ema = inrkit.load_run(out, weights="ema")
    for name, p in ema.prior.denoiser.named_parameters():
        torch.testing.assert_close(p, final.prior.ema.params()[name])
    with pytest.raises(CheckpointError, match="not found"):
        inrkit.load_run(out, weights="checkpoint-vae-999")


def test_sampling_at_a_finer_resolution_refines_the_same_function(trained):
    model, _, _ = trained
    z = model.sample_latents(2, steps=3, seed=1)
    native = model.decode(z)
    fine = model.decode(z, resolution=24, chunk=100)  # 3x: its cell centres include the native ones
    assert native.shape == (2, 1, 8, 8) and fine.shape == (2, 1, 24, 24)
    torch.testing.assert_close(fine[:, :, 1::3, 1::3], native, atol=1e-4, rtol=1e-4)


def test_decode_chunks_and_batches_do_not_change_values(trained):
    model, _, _ = trained
    z = model.sample_latents(5, steps=2, seed=3)
    whole = model.decode(z, chunk=10_000, batch_size=16)
    pieces = model.decode(z, chunk=7, batch_size=2)
    torch.testing.assert_close(whole, pieces, atol=1e-5, rtol=1e-5)


def test_prior_stage_keeps_the_vae_frozen(tmp_path):
    model = LDMI.from_config(toy_run_config())
    model.fit(out=tmp_path / "r", stages=("vae",))
    enc = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    hyp = {k: v.clone() for k, v in model.hypernet.state_dict().items()}
    prior_before = {k: v.clone() for k, v in model.prior.denoiser.state_dict().items()}
    summary = model.fit(out=tmp_path / "r", stages=("prior",))
    assert list(summary["stages"]) == ["prior"]
    assert all(torch.equal(v, model.encoder.state_dict()[k]) for k, v in enc.items())
    assert all(torch.equal(v, model.hypernet.state_dict()[k]) for k, v in hyp.items())
    assert any(not torch.equal(v, model.prior.denoiser.state_dict()[k]) for k, v in prior_before.items())


def test_prior_stage_alone_needs_a_trained_vae(tmp_path):
    model = LDMI.from_config(toy_run_config())
    with pytest.raises(CheckpointError, match="needs a trained 'vae'"):
        model.fit(out=tmp_path / "fresh", stages=("prior",))


def test_gaussian_prior_has_only_the_vae_stage(tmp_path):
    cfg = apply_overrides(toy_run_config(), ["model.prior.name=gaussian"])
    model = LDMI.from_config(cfg)
    assert model.stages == ("vae",)
    assert model.config.prior == {"name": "gaussian"}
    summary = model.fit(out=tmp_path / "g")
    assert list(summary["stages"]) == ["vae"]
    assert model.sample(2, seed=0).shape == (2, 1, 8, 8)


def test_points_subset_trains_on_random_coordinates():
    model = LDMI.from_config(toy_run_config())
    x = torch.randn(2, 1, 8, 8).clamp(-1, 1)
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    a, _ = model.vae_loss(x, points=10, generator=g1)
    torch.manual_seed(0)
    b, _ = model.vae_loss(x, points=10, generator=g2)
    torch.manual_seed(0)
    c, _ = model.vae_loss(x, points=None)
    assert torch.equal(a, b) and not torch.equal(a, c)
    # the coordinates are 10 distinct cells of the training grid, with x's values there
    coords, target = model._training_points(x, 10, torch.Generator().manual_seed(0))
    rows = (coords[:, None, :] == model.coords[None]).all(-1).float().argmax(1)
    assert coords.shape == (10, 2) and len(set(rows.tolist())) == 10 and torch.equal(model.coords[rows], coords)
    assert torch.equal(target, model.domain.from_grid(x)[:, rows])


def test_the_prior_stage_reaches_ddp_through_the_trainers_stage_step():
    """DDP wraps the trainer's ``_StageStep``, whose forward is the stage's loss: for stage ``prior``
    the prior's own ``loss`` on latents drawn from q(z|x); a prior needs no ``forward`` of its own."""
    from inrkit.train.trainer import _StageStep

    model = LDMI.from_config(toy_run_config())
    mean, logvar = torch.randn(4, *model.latent_shape), torch.full((4, *model.latent_shape), -2.0)
    torch.manual_seed(0)
    loss, _ = _StageStep(model, "prior")((mean, logvar))
    torch.manual_seed(0)
    z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
    torch.testing.assert_close(loss, model.prior.loss(z))
    loss.backward()
    assert all(p.grad is not None for p in model.stage_parameters("prior"))


def test_existing_run_is_refused_unless_resume_or_overwrite(trained, tmp_path):
    model = LDMI.from_config(toy_run_config())
    out = tmp_path / "r"
    model.fit(out=out, stages=("vae",))
    with pytest.raises(ConfigError, match="already exists"):
        model.fit(out=out)
    model.fit(out=out, overwrite=True, stages=("vae",))
    (tmp_path / "notarun").mkdir()
    (tmp_path / "notarun" / "precious.txt").write_text("x")
    with pytest.raises(ConfigError, match="not an inrkit run"):
        model.fit(out=tmp_path / "notarun", overwrite=True)
    assert (tmp_path / "notarun" / "precious.txt").exists()
    # a folder with a config.yaml of its own is not a run either
    (tmp_path / "notarun" / "config.yaml").write_text("a: 1\n")
    with pytest.raises(ConfigError, match="not a run config inrkit wrote"):
        model.fit(out=tmp_path / "notarun", overwrite=True)
    assert (tmp_path / "notarun" / "precious.txt").read_text() == "x"
    assert (tmp_path / "notarun" / "config.yaml").read_text() == "a: 1\n"


def test_overwrite_keeps_what_no_run_writes(tmp_path, capsys):
    """--overwrite replaces a run's own files and keeps a user's notes and data put in its folder."""
    model = LDMI.from_config(toy_run_config())
    out = tmp_path / "r"
    model.fit(out=out, stages=("vae",))
    (out / "NOTES.md").write_text("my notes")
    (out / "mydata").mkdir()
    (out / "mydata" / "x.csv").write_text("1,2\n")
    stale = out / "checkpoints" / "user-left-this"
    stale.write_text("inside a run folder inrkit writes: replaced")
    capsys.readouterr()
    model.fit(out=out, overwrite=True, stages=("vae",))
    err = capsys.readouterr().err
    assert "kept 2 entries" in err and "NOTES.md" in err and "mydata" in err
    assert (out / "NOTES.md").read_text() == "my notes" and (out / "mydata" / "x.csv").read_text() == "1,2\n"
    assert (out / "config.yaml").exists() and (out / "model.safetensors").exists() and not stale.exists()


def test_resume_with_a_different_model_is_refused(tmp_path):
    LDMI.from_config(toy_run_config()).fit(out=tmp_path / "r", stages=("vae",))
    other = LDMI.from_config(apply_overrides(toy_run_config(), ["model.inr.width=8"]))
    with pytest.raises(ConfigError, match="model.inr.width"):
        other.fit(out=tmp_path / "r", resume=True)


def test_missing_or_corrupt_runs_are_clean_errors(trained, tmp_path):
    _, out, _ = trained
    with pytest.raises(CheckpointError, match="run directory not found"):
        inrkit.load_run(tmp_path / "nope")
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("config.yaml", "model.safetensors"):
        (copy / name).write_bytes((out / name).read_bytes())
    (copy / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="corrupt"):
        inrkit.load_run(copy)
    (copy / "config.yaml").write_text("schema_version: 99\nmodel: {name: ldmi}\n")
    with pytest.raises(CheckpointError, match="schema_version"):
        inrkit.load_run(copy)


def test_weights_holding_nan_or_inf_are_refused_naming_the_tensor(trained, tmp_path):
    """A weights file with NaN/inf (damaged, or written by other code: inrkit's never hold any) is a
    CheckpointError naming file and tensor, for sampling, evaluating and --from alike."""
    from safetensors.torch import load_file, save_file

    _, out, _ = trained
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("config.yaml", "run.json", "model.safetensors"):
        (copy / name).write_bytes((out / name).read_bytes())
    state = load_file(str(copy / "model.safetensors"))
    name = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 2)
    state[name] = state[name].clone()
    state[name].view(-1)[:2] = torch.tensor([float("nan"), float("inf")])
    save_file(state, str(copy / "model.safetensors"))
    with pytest.raises(CheckpointError, match=rf"model.safetensors: '{name}' holds 2 non-finite value\(s\)"):
        inrkit.load_run(copy)
    with pytest.raises(CheckpointError, match="non-finite"):
        LDMI.from_config(toy_run_config()).fit(out=tmp_path / "new", init_from=copy / "model.safetensors", stages=("vae",))


def test_evaluate_reports_mean_and_std(trained):
    model, _, _ = trained
    val = open_dataset(model.domain, None, split="val", n_items=12)
    result = model.evaluate(val, batch_size=2)
    assert result["n_items"] == len(val) == 3
    per_item = model.domain.metrics(model.reconstruct(torch.stack([val[i] for i in range(3)])),
                                    torch.stack([val[i] for i in range(3)]))["mse"]
    assert result["mse"]["mean"] == pytest.approx(float(per_item.mean()), rel=1e-5)
    assert result["mse"]["std"] == pytest.approx(float(per_item.std()), rel=1e-4)
    assert np.isfinite(result["psnr"]["mean"])


def test_train_seed_decides_the_initial_weights():

    def weights(seed):
        torch.manual_seed(seed + 100)  # the caller's RNG state must not matter
        model = LDMI.from_config(recipe_config("ldmi", "sphere", "tiny", [f"train.seed={seed}"]))
        return model.state_dict()

    a, b, c = weights(0), weights(0), weights(1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_training_a_later_stage_again_is_refused_without_resume(tmp_path):
    """--stage prior on a run whose prior has checkpoints would start it again from step 0 over them."""
    model = LDMI.from_config(toy_run_config())
    out = tmp_path / "r"
    model.fit(out=out, stages=("vae",))
    model.fit(out=out, stages=("prior",))
    ckpts = sorted(p.name for p in (out / "checkpoints").iterdir())
    with pytest.raises(ConfigError, match=r"already has checkpoints of stage 'prior' \(newest checkpoint-prior-\d+\).*--resume"):
        model.fit(out=out, stages=("prior",))
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ckpts
    model.fit(out=out, stages=("prior",), resume=True)

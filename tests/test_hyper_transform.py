"""Hyper-transforming a pre-trained LDM (an inrkit ldm run, a diffusers AutoencoderKL folder) into LDMI."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file, save_file

import inrkit
from inrkit.errors import ConfigError
from inrkit_ldmi.hyper_transform import frozen_source_model, hyper_transform_config, train_hyper_transform
from inrkit_ldmi.model import LDMI
from inrkit_ldmi.sources import load_source

from conftest import recipe_config, resolved, run_cli

diffusers = pytest.importorskip("diffusers", reason="diffusers (the 'test' extra) writes the AutoencoderKL fixtures")


def sets(items: list[str]) -> list[str]:
    return [a for item in items for a in ("--set", item)]


RUN = ["train.progress=false", "train.n_renders=2", "train.sample_steps=2", "train.vae.batch_size=4", "data.n_items=10"]
SOURCE = RUN + ["model.encoder.base_channels=8", "model.prior.model_channels=16", "train.vae.steps=3", "train.prior.steps=2"]
HT = RUN + ["train.vae.steps=3", "train.log_every=1"]
HT_NEW_PRIOR = HT + ["train.prior.steps=2", "model.prior.model_channels=16"]  # sources without a prior
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ldm_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("src") / "ldm"
    assert run_cli(["train", "ldm", "-m", "image", "--preset", "tiny", "--out", str(out), *sets(SOURCE)]) == 0
    return out


def save_vae(folder, levels: int = 3, **kw):
    torch.manual_seed(0)
    kw = {"in_channels": 1, "out_channels": 1, "block_out_channels": (8,) + (16,) * (levels - 1), "layers_per_block": 1,
          "latent_channels": 4, "norm_num_groups": 4, "sample_size": 16, **kw}
    diffusers.AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * levels,
                            up_block_types=("UpDecoderBlock2D",) * levels, **kw).save_pretrained(folder)
    return folder


def same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_cli_from_an_inrkit_ldm_run(ldm_run, tmp_path):
    out = tmp_path / "ht"
    args = ["train", "ldmi", "--paradigm", "hyper-transform", "--from", str(ldm_run), "--preset", "tiny", "--out", str(out)]
    assert run_cli([*args, *sets(HT)]) == 0
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["paradigm"] == "hyper-transform" and config["model"]["name"] == "ldmi"
    assert config["hyper_transform"]["source"]["kind"] == "inrkit-ldm"
    assert config["hyper_transform"]["source"]["path"] == str(ldm_run.resolve())
    assert resolved(config)["hyper_transform"] == config["hyper_transform"]  # the record survives re-resolving
    # reused as a recipe (train ldmi --config, compare --config), the run's config trains fully: no paradigm record
    recipe = recipe_config("ldmi", config_file=out / "config.yaml")
    assert "paradigm" not in recipe and recipe["model"] == config["model"]
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["stages"]) == ["vae"]  # the source's trained prior is kept, not retrained

    src, ht = inrkit.load_run(ldm_run), inrkit.load_run(out)
    assert type(ht) is LDMI  # a normal LDMI run
    assert same_tensors(src.encoder.state_dict(), ht.encoder.state_dict())
    assert same_tensors(src.prior.state_dict(), ht.prior.state_dict())
    assert ht.sample(2, resolution=64, steps=2, seed=0).shape == (2, 1, 64, 64)

    assert run_cli(["evaluate", str(out), "--ddim-steps", "2"]) == 0
    report = json.loads((out / "eval.json").read_text())["hyper_transform"]
    for who in ("hd", "conv_decoder"):
        assert set(report["reconstruction"][who]) >= {"psnr", "ssim"}
    png = Image.open(out / "hyper_transform_report" / "side_by_side.png")
    hd4 = Image.open(out / "hyper_transform_report" / "hd_4x.png")
    assert png.size[0] > 2.5 * hd4.size[0] * 0.9  # three 64-wide tiles per item against one
    assert run_cli(["sample", str(out), "--n", "2", "--resolution", "32", "--ddim-steps", "2"]) == 0


def test_devices_2_goes_through_the_cli_launcher_like_train(ldm_run, tmp_path):
    """``--devices 2`` relaunches from the CLI (inrkit_cli.launch, as ``train`` full does), not from the library:
    two gloo processes train the HD, rank 0 alone writes the run and keeps the source's decoder."""
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "inrkit_cli.main", "train", "ldmi", "--paradigm", "hyper-transform", "--from", str(ldm_run),
           "--preset", "tiny", "--out", str(out), "--device", "cpu", "--devices", "2", *sets(HT)]
    proc = subprocess.run(cmd, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "launching 2 processes: inrkit train ldmi --paradigm hyper-transform" in proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and list(summary["stages"]) == ["vae"]
    assert (out / "checkpoints" / "checkpoint-vae-3" / "rng-1.safetensors").is_file()
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3  # one writer, not two
    assert (out / "source_decoder.safetensors").is_file()
    assert yaml.safe_load((out / "config.yaml").read_text())["paradigm"] == "hyper-transform"


def test_frozen_parts_stay_bit_identical_and_only_the_hd_learns(ldm_run, tmp_path):
    src = load_source(ldm_run)
    cfg, options, adaptation = hyper_transform_config(src, preset="tiny", overrides=HT)
    assert adaptation["adapted"] is False and adaptation["hd_tokens"] == 16
    model = frozen_source_model(src, cfg, options)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modes = []
    model.fit(out=tmp_path / "ht", on_step=lambda stage, step, logs: modes.append((model.encoder.training, model.prior.training)))
    after = model.state_dict()
    for part, reference in (("encoder.", src.encoder_state), ("prior.", src.prior_state)):
        keys = [k for k in after if k.startswith(part)]
        assert keys and all(torch.equal(after[k], before[k]) for k in keys)
        assert same_tensors({k[len(part):]: after[k] for k in keys}, reference)
    hd_keys = [k for k, v in after.items() if k.startswith("hypernet.") and v.is_floating_point()]
    changed = [k for k in hd_keys if not torch.equal(after[k], before[k])]
    assert len(changed) >= 0.9 * len(hd_keys), sorted(set(hd_keys) - set(changed))
    assert modes and not any(enc or pri for enc, pri in modes)  # frozen parts stayed in eval mode
    assert not any(p.requires_grad for p in model.encoder.parameters())


def test_cli_from_a_diffusers_autoencoder_adapts_the_tokens(tmp_path):
    vae = save_vae(tmp_path / "vae")
    out = tmp_path / "ht"
    args = ["train", "ldmi", "--paradigm", "hyper-transform", "--from", str(vae), "-m", "image", "--preset", "tiny",
            "--out", str(out)]
    assert run_cli([*args, *sets(HT_NEW_PRIOR)]) == 0
    config = yaml.safe_load((out / "config.yaml").read_text())
    record = config["hyper_transform"]
    assert record["source"]["kind"] == "diffusers-autoencoder-kl"
    assert record["adaptation"]["source_latent_shape"] == [4, 4, 4] and record["adaptation"]["preset_latent_shape"] == [3, 8, 8]
    assert config["model"]["encoder"]["name"] == "autoencoder_kl"
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["stages"]) == ["vae", "prior"]  # an autoencoder brings no prior: trained on its latents

    ht = inrkit.load_run(out)
    assert ht.hypernet.tokenizer.n_tokens == record["adaptation"]["hd_tokens"] == 4
    weights = load_file(str(vae / "diffusion_pytorch_model.safetensors"))
    expected = {k[len("encoder."):]: v for k, v in weights.items() if k.startswith("encoder.")}
    expected.update({k: v for k, v in weights.items() if k.startswith("quant_conv.")})
    assert same_tensors(ht.encoder.state_dict(), expected)
    assert run_cli(["evaluate", str(out), "--ddim-steps", "2"]) == 0
    assert (out / "hyper_transform_report" / "conv_decoder.png").is_file()


def test_mismatched_sources_are_refused_naming_both_shapes(ldm_run, tmp_path):
    tiny = save_vae(tmp_path / "deep", levels=5)  # 16×16 → a 1×1 latent: no 2×2 patch fits
    with pytest.raises(ConfigError, match=r"\(4, 1, 1\).*\(3, 8, 8\)"):
        hyper_transform_config(load_source(tiny), modality="image", preset="tiny")
    args = ["train", "ldmi", "--paradigm", "hyper-transform", "-m", "image", "--preset", "tiny", "--out", str(tmp_path / "x")]
    assert run_cli([*args, "--from", str(tiny)]) == 2
    assert run_cli([*args, "--from", str(tiny), "--set", "model.hypernet.patch_size=1", *sets(HT_NEW_PRIOR)]) == 0

    rgb = save_vae(tmp_path / "rgb", in_channels=3, out_channels=3)
    with pytest.raises(ConfigError, match=r"\(3, H, W\).*\(1, 16, 16\)"):
        hyper_transform_config(load_source(rgb), modality="image", preset="tiny")
    with pytest.raises(ConfigError, match=r"\(3, 8, 8\).*\(4, 4, 4\)"):
        train_hyper_transform(source=save_vae(tmp_path / "v3"), modality="image", preset="tiny", prior_from=ldm_run,
                              out=tmp_path / "y")
    with pytest.raises(ConfigError, match="comes frozen from the source"):
        hyper_transform_config(load_source(ldm_run), preset="tiny", overrides=["model.encoder.base_channels=4"])
    assert run_cli([*args[:-2], "--from", str(tmp_path / "nowhere"), "--out", str(tmp_path / "z")]) == 2


def test_prior_from_another_run_is_frozen_too(ldm_run, tmp_path):
    vae = save_vae(tmp_path / "vae", levels=2, latent_channels=3)  # latent (3, 8, 8), as the ldm run's prior
    summary = train_hyper_transform(source=vae, modality="image", preset="tiny", prior_from=ldm_run, overrides=HT,
                                    out=tmp_path / "ht")
    assert list(summary["stages"]) == ["vae"]
    assert summary["hyper_transform"]["source"]["prior"] == str(ldm_run.resolve())
    assert same_tensors(inrkit.load_run(ldm_run).prior.state_dict(), inrkit.load_run(tmp_path / "ht").prior.state_dict())


def test_perceptual_term_from_a_local_feature_network(ldm_run, tmp_path):
    torch.manual_seed(0)
    vgg = {"features.0.weight": torch.randn(4, 3, 3, 3) * 0.3, "features.0.bias": torch.zeros(4),
           "features.2.weight": torch.randn(4, 4, 3, 3) * 0.3, "features.2.bias": torch.zeros(4),
           "features.5.weight": torch.randn(8, 4, 3, 3) * 0.3, "features.5.bias": torch.zeros(8)}
    save_file(vgg, str(tmp_path / "vgg.safetensors"))
    out = tmp_path / "ht"
    train_hyper_transform(source=ldm_run, preset="tiny", out=out,
                          overrides=[*HT, f"hyper_transform.perceptual={tmp_path / 'vgg.safetensors'}",
                                     "hyper_transform.perceptual_weight=0.5"])
    logs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in logs if r.get("stage") == "vae" and "loss" in r]
    assert steps and all(r["perceptual"] > 0 and r["loss"] > r["nll"] for r in steps)
    assert not any(k.startswith("_perceptual") for k in inrkit.load_run(out).state_dict())
    (tmp_path / "vgg.pt").write_bytes(b"not a pickle we would open")
    with pytest.raises(ConfigError, match="safetensors"):
        train_hyper_transform(source=ldm_run, preset="tiny", out=tmp_path / "no",
                              overrides=[*HT, f"hyper_transform.perceptual={tmp_path / 'vgg.pt'}"])

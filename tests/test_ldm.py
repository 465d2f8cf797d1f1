"""The conventional LDM (encoder + conv decoder + prior) and the diffusers AutoencoderKL layout."""
from __future__ import annotations

import pytest
import torch

import inrkit
from inrkit.errors import ConfigError
from inrkit_ldmi.autoencoder_kl import AutoencoderKLConfig, AutoencoderKLDecoder, AutoencoderKLEncoder
from conftest import recipe_config
from inrkit_ldmi.ldm import LDM, mirror_decoder
from inrkit_ldmi.sources import _legacy_names

from conftest import run_cli


TINY = ["model.encoder.base_channels=8", "model.prior.model_channels=16", "train.vae.steps=3", "train.prior.steps=2",
        "train.vae.batch_size=4", "train.progress=false", "data.n_items=10", "train.n_renders=2", "train.sample_steps=2"]


def test_ldm_config_comes_from_the_ldmi_preset_with_a_mirrored_decoder():
    cfg = recipe_config("ldm", "image", "tiny")
    model = cfg["model"]
    assert model["name"] == "ldm" and "hypernet" not in model and "inr" not in model
    enc, dec = model["encoder"], model["decoder"]
    assert dec["name"] == enc["name"] == "conv2d"
    for key in ("base_channels", "channel_mult", "num_res_blocks", "mid_attention"):
        assert dec[key] == enc[key]
    # an explicit decoder field wins over the mirror
    cfg = recipe_config("ldm", "image", "tiny", ["model.decoder.name=conv2d", "model.decoder.base_channels=4"])
    assert cfg["model"]["decoder"]["base_channels"] == 4
    with pytest.raises(ConfigError, match="model.decoder"):
        recipe_config("ldm", "image", "tiny", ["model.decoder.name=conv9d"])
    with pytest.raises(ConfigError, match="no decoder mirrors encoder 'nope'"):
        mirror_decoder({"name": "nope"})


def test_ldm_vae_stage_learns_and_decodes_at_any_resolution():
    torch.manual_seed(0)
    model = LDM.from_config(recipe_config("ldm", "image", "tiny", ["model.domain.resolution=8", "model.encoder.base_channels=8"]))
    assert model.stages == ("vae", "prior")
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    params = list(model.stage_parameters("vae"))
    assert {id(p) for p in params} == {id(p) for p in [*model.encoder.parameters(), *model.decoder.parameters()]}
    opt = torch.optim.Adam(params, lr=3e-3)
    first = None
    for _ in range(15):
        loss, logs = model.stage_loss("vae", x)
        first = first if first is not None else float(logs["nll"].detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(logs["nll"].detach()) < 0.7 * first
    model.eval()
    z = model.encode(x)
    assert z.shape == (4, *model.latent_shape)
    native, big = model.decode(z), model.decode(z, resolution=16)
    assert native.shape == (4, 1, 8, 8) and big.shape == (4, 1, 16, 16)
    assert torch.equal(model.decode(z, resolution=8), native)
    # other resolutions interpolate the decoder's own grid: convex combinations, no new extremes
    lo, hi = native.flatten(1).min(1).values, native.flatten(1).max(1).values
    assert (big.flatten(1).min(1).values >= lo - 1e-6).all() and (big.flatten(1).max(1).values <= hi + 1e-6).all()


def test_train_ldm_cli_run_reloads(tmp_path):
    out = tmp_path / "ldm"
    args = ["train", "ldm", "-m", "image", "--preset", "tiny", "--out", str(out)]
    for item in TINY:
        args += ["--set", item]
    assert run_cli(args) == 0
    model = inrkit.load_run(out)
    assert isinstance(model, LDM) and inrkit.runs.Run.open(out).config["model"]["name"] == "ldm"
    a = model.sample(2, steps=2, seed=3)
    assert torch.equal(a, model.sample(2, steps=2, seed=3)) and a.shape == (2, 1, 16, 16)
    assert (out / "samples" / "after-prior").is_dir() and (out / "summary.json").is_file()
    assert run_cli(["train", "ldm", "-m", "image", "--preset", "tiny", "--out", str(out)]) == 2  # exists: refused
    assert run_cli(["train", "ldm", "-m", "image", "--preset", "tiny", "--set", "model.decoder.widht=3"]) == 2


def _diffusers_vae(**kw):
    diffusers = pytest.importorskip("diffusers", reason="diffusers is in the 'test' extra")
    kw = {"in_channels": 1, "out_channels": 1, "block_out_channels": (8, 16, 16), "layers_per_block": 1,
          "latent_channels": 4, "norm_num_groups": 4, "sample_size": 16, **kw}
    n = len(kw["block_out_channels"])
    return diffusers.AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n, **kw)


def test_autoencoder_kl_matches_diffusers_key_for_key():
    torch.manual_seed(0)
    ref = _diffusers_vae().eval()
    with torch.no_grad():  # move norms and biases off their defaults, so a misplaced one shows
        for p in ref.parameters():
            p.add_(0.05 * torch.randn_like(p))
    cfg = AutoencoderKLConfig(block_out_channels=[8, 16, 16], layers_per_block=1, latent_channels=4, norm_num_groups=4)
    enc = AutoencoderKLEncoder(cfg, in_channels=1, grid_shape=(16, 16))
    dec = AutoencoderKLDecoder(cfg, out_channels=1, grid_shape=(16, 16), latent_shape=enc.latent_shape)
    state = ref.state_dict()
    enc.load_state_dict({**{k[8:]: v for k, v in state.items() if k.startswith("encoder.")},
                         **{k: v for k, v in state.items() if k.startswith("quant_conv.")}})
    dec.load_state_dict({**{k[8:]: v for k, v in state.items() if k.startswith("decoder.")},
                         **{k: v for k, v in state.items() if k.startswith("post_quant_conv.")}})
    x = torch.randn(2, 1, 16, 16)
    z = torch.randn(2, 4, 4, 4)
    with torch.no_grad():
        dist = ref.encode(x).latent_dist
        mean, logvar = enc(x)
        assert enc.latent_shape == (4, 4, 4)
        assert torch.allclose(mean, dist.mean, atol=1e-5) and torch.allclose(logvar, dist.logvar, atol=1e-5)
        assert torch.allclose(dec(z), ref.decode(z).sample, atol=1e-5)


def test_autoencoder_kl_config_refuses_groups_that_do_not_divide():
    with pytest.raises(ValueError, match="norm_num_groups"):
        AutoencoderKLConfig(block_out_channels=[8, 12], norm_num_groups=8)


def test_legacy_attention_names_are_renamed_and_squeezed():
    state = {"mid_block.attentions.0.query.weight": torch.ones(4, 4, 1, 1), "mid_block.attentions.0.proj_attn.bias": torch.ones(4),
             "conv_in.weight": torch.ones(4, 1, 3, 3)}
    out = _legacy_names(state)
    assert out["mid_block.attentions.0.to_q.weight"].shape == (4, 4)
    assert "mid_block.attentions.0.to_out.0.bias" in out and out["conv_in.weight"].shape == (4, 1, 3, 3)

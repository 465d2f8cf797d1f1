"""The ``modulation`` hypernetwork (Functa-style FiLM of one shared INR): the FiLM formula, forward and
backward for every mapping and latent shape, chunked decoding, counts, errors, and the CLI comparison."""
import json
import math

import pytest
import torch

import inrkit
from conftest import run_cli
from inrkit.errors import ConfigError, InrkitError


def build(latent_shape, inr=None, **cfg):
    inr = inr or inrkit.build("inrs", "siren", in_dim=2, out_dim=3, width=8, depth=3)
    return inrkit.build("hypernets", "modulation", context={"inr": inr, "latent_shape": latent_shape}, **cfg)


def perturb(hn, scale=0.3):
    """Move the zero-initialised maps off zero, so every parameter gets a gradient."""
    torch.manual_seed(3)
    with torch.no_grad():
        for p in hn.mapping.parameters():
            p.add_(torch.randn_like(p) * scale)


def test_registered():
    assert "modulation" in inrkit.get_registry("hypernets").names()


@pytest.mark.parametrize("mapping,modulate,latent_shape,in_dim", [
    ("linear", "shift", (16,), 2), ("linear", "scale_shift", (3, 4, 4), 2), ("conv", "shift", (3, 4, 4), 2),
    ("conv", "scale_shift", (2, 3, 3, 3), 3), ("conv", "shift", (2, 5, 3), 2)])
def test_forward_backward(mapping, modulate, latent_shape, in_dim):
    inr = inrkit.build("inrs", "siren", in_dim=in_dim, out_dim=2, width=8, depth=3)
    hn = build(latent_shape, inr, mapping=mapping, modulate=modulate, conv_channels=4)
    perturb(hn)
    z = torch.randn(3, *latent_shape)
    params = hn(z)
    assert {k: tuple(v.shape) for k, v in params.items()} == {k: (3, *s) for k, s in inr.param_shapes.items()}
    y = hn.decode(z, torch.rand(20, in_dim) * 2 - 1)
    assert y.shape == (3, 20, 2)
    y.square().mean().backward()
    for name, p in hn.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_film_formula_on_a_siren():
    """sin(ω0 (γ ⊙ (W h + b) + s)) per hidden layer, written out by hand; the output layer is shared."""
    torch.manual_seed(0)
    inr = inrkit.build("inrs", "siren", in_dim=2, out_dim=1, width=6, depth=2, w0=30.0, w0_initial=20.0)
    hn = build((5,), inr, modulate="scale_shift")
    perturb(hn, 0.1)
    z, x = torch.randn(2, 5), torch.rand(7, 2) * 2 - 1
    mods = hn.modulations(z)
    base = {n: p.detach() for n, p in hn.base_weights.items()}
    for i in range(2):
        h = x
        for layer, w0 in (("l0", 20.0), ("l1", 30.0)):
            gamma, shift = mods[layer][i].chunk(2)
            pre = h @ base[layer][:-1] + base[layer][-1]
            h = torch.sin(w0 * ((1 + gamma) * pre + shift))
        want = h @ base["l2"][:-1] + base["l2"][-1]
        torch.testing.assert_close(hn.decode(z, x)[i], want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("mapping", ["linear", "conv"])
def test_untrained_emits_the_base_inr_for_every_latent(mapping):
    hn = build((3, 4, 4), mapping=mapping, modulate="scale_shift")
    x = torch.rand(11, 2) * 2 - 1
    base = {n: p[None] for n, p in hn.base_weights.items()}
    want = hn.inr(base, x)[0]
    out = hn.decode(torch.randn(4, 3, 4, 4) * 5, x)
    for i in range(4):
        torch.testing.assert_close(out[i], want)


def test_latent_changes_only_its_own_item_and_chunks_match():
    hn = build((3, 4, 4), mapping="conv", conv_channels=4)
    perturb(hn)
    z, x = torch.randn(4, 3, 4, 4), torch.rand(50, 2) * 2 - 1
    with torch.no_grad():
        full = hn.decode(z, x, chunk=None)
        torch.testing.assert_close(hn.decode(z, x, chunk=7), full)
        other = hn.decode(torch.cat([z[:1], torch.randn(3, 3, 4, 4)]), x)
    torch.testing.assert_close(other[0], full[0])
    assert not torch.allclose(full[0], full[1])


def test_parameter_report_counts():
    inr = inrkit.build("inrs", "siren", in_dim=2, out_dim=3, width=256, depth=4)
    lin = build((3, 16, 16), inr)
    rep = lin.parameter_report()
    assert rep["base_weights"] == inr.num_params == 198_915
    assert rep["modulations_per_item"] == 4 * 256
    assert rep["mapping"] == (3 * 16 * 16 + 1) * 1024
    assert rep["total"] == rep["base_weights"] + rep["mapping"] == sum(p.numel() for p in lin.parameters())
    both = build((3, 16, 16), inr, modulate="scale_shift", learn_base=False)
    rep = both.parameter_report()
    assert rep["modulations_per_item"] == 2048 and rep["base_weights"] == 0
    assert rep["total"] == (3 * 16 * 16 + 1) * 2048
    conv = build((3, 16, 16), inr, mapping="conv", conv_channels=4).parameter_report()
    assert conv["mapping"] == 4 * ((3 * 9 + 1) * 4 + (4 * 256 + 1) * 256)


def test_bad_latents_and_configs():
    with pytest.raises(ConfigError, match="latent grid"):
        build((16,), mapping="conv")
    with pytest.raises(InrkitError, match="expected latents of shape"):
        build((3, 4, 4))(torch.randn(2, 3, 4, 5))
    with pytest.raises(ConfigError):
        build((3, 4, 4), modulate="scale")


def test_weights_roundtrip(tmp_path):
    from inrkit.io import load_state, save_state

    hn = build((3, 4, 4), mapping="conv", conv_channels=4)
    perturb(hn)
    save_state(hn, tmp_path / "w.safetensors")
    other = build((3, 4, 4), mapping="conv", conv_channels=4)
    load_state(other, tmp_path / "w.safetensors")
    z, x = torch.randn(2, 3, 4, 4), torch.rand(9, 2)
    torch.testing.assert_close(other.decode(z, x), hn.decode(z, x))


def test_cli_compares_four_hypernets(tmp_path):
    """`inrkit compare --hypernets hd,mlp,mixture,modulation`, unchanged, on tiny settings."""
    out = tmp_path / "four"
    args = ["compare", "--hypernets", "hd,mlp,mixture,modulation", "-m", "image", "--preset", "tiny",
            "--budget-steps", "2", "--seeds", "1", "--out", str(out), "--set", "hypernet.mlp.hidden=[16]",
            "--set", "hypernet.mixture.hidden=[16]", "--set", "hypernet.mixture.n_components=2",
            "--set", "hypernet.modulation.mapping=conv", "--set", "hypernet.modulation.conv_channels=4"]
    for item in ("model.domain.resolution=8", "model.encoder.base_channels=8", "data.n_items=6", "train.vae.batch_size=2",
                 "train.n_renders=2", "train.sample_steps=1", "train.progress=false", "train.tensorboard=false",
                 "model.prior.model_channels=8"):
        args += ["--set", item]
    assert run_cli(args) == 0
    report = json.loads((out / "compare.json").read_text())
    rows = {r["hypernet"]: r for r in report["points"][0]["results"]}
    assert list(rows) == ["hd", "mlp", "mixture", "modulation"]
    mod = rows["modulation"]
    assert mod["status"] == "ok" and mod["spec"]["mapping"] == "conv"
    assert mod["parameter_report"]["base_weights"] == mod["inr_params"]
    assert math.isfinite(mod["metrics"]["psnr"]["mean"]) and mod["decode_ms"] > 0
    assert "| modulation |" in (out / "compare.md").read_text()
    model = inrkit.load_run(out / "modulation-seed0", device="cpu")
    assert type(model.hypernet).__name__ == "ModulationHypernet"

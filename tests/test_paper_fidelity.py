"""The `paper` presets against the paper's code: objective, sizes, sampler, baselines (issue #15)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import yaml

import inrkit
from inrkit.priors.samplers import ddim_sample, ddim_timesteps, previous_timestep
from inrkit.priors.schedule import NoiseSchedule
from inrkit_ldmi.config import build_part
from inrkit_ldmi.model import LDMI
from inrkit_ldmi.presets import available_presets
from inrkit_ldmi.presets.references import REFERENCES_FILE, annotated_references, preset_references

from conftest import recipe_config, run_cli, toy_run_config


def count(*modules_or_params) -> int:
    total = 0
    for m in modules_or_params:
        total += m.numel() if isinstance(m, torch.Tensor) else sum(p.numel() for p in m.parameters())
    return total


# -- item 1: the reference's objective (sums over data values and latent elements) -----------------

def _toy_model(**model):
    cfg = toy_run_config()
    cfg["model"].update({"likelihood": {"name": "l1_logvar", "logvar_init": 0.3}, "beta": 1e-4, **model})
    return LDMI.from_config(cfg)


def test_sum_reductions_give_the_reference_objective_and_mean_scales_the_kl_by_n_data_over_n_latent():
    torch.manual_seed(0)
    summed = _toy_model(nll_reduction="sum", kl_reduction="sum")
    averaged = _toy_model()  # inrkit-v1: both averaged
    averaged.load_state_dict(summed.state_dict())
    x = torch.rand(3, 1, 8, 8) * 2 - 1
    mean, logvar = summed.encoder(x)
    z = summed.encoder.reparameterize(mean, logvar)
    pred = summed._inr_values(z, summed.coords)
    target = summed.domain.from_grid(x)

    # the reference (LDM's LPIPSWithDiscriminator / LDMI's GaussianLoss), written out on its own
    s = torch.tensor(0.3)
    nll_ref = ((target - pred).abs() / s.exp() + s).sum() / x.shape[0]
    kl_ref = (0.5 * (mean**2 + logvar.exp() - 1 - logvar)).sum() / x.shape[0]
    loss_ref = nll_ref + 1e-4 * kl_ref
    loss_sum, logs_sum = summed._elbo(pred, target, mean, logvar)
    torch.testing.assert_close(loss_sum, loss_ref)
    torch.testing.assert_close(logs_sum["kl"], kl_ref)

    loss_mean, logs_mean = averaged._elbo(pred, target, mean, logvar)
    n_data, n_latent = target[0].numel(), mean[0].numel()
    assert (n_data, n_latent) == (64, 32)
    torch.testing.assert_close(logs_mean["nll"] * n_data, nll_ref)
    torch.testing.assert_close(logs_mean["kl"] * n_latent, kl_ref)
    # the KL's share of the loss relative to the likelihood's, averaged vs summed: N_data / N_latent
    pressure_mean = 1e-4 * logs_mean["kl"] / logs_mean["nll"]
    pressure_sum = 1e-4 * logs_sum["kl"] / logs_sum["nll"]
    torch.testing.assert_close(pressure_mean / pressure_sum, torch.tensor(n_data / n_latent))
    # not merely a rescaled loss: rescaled to the reference's units, the averaged one has 2x the KL here
    torch.testing.assert_close(loss_sum - n_data * loss_mean, 1e-4 * kl_ref * (1 - n_data / n_latent))


def test_summed_nll_over_a_point_subset_estimates_the_whole_grids_sum():
    model = _toy_model(nll_reduction="sum", kl_reduction="sum")
    x = torch.rand(2, 1, 8, 8) * 2 - 1
    mean, logvar = model.encoder(x)
    full = model.likelihood(model._inr_values(mean, model.coords), model.domain.from_grid(x))
    idx = torch.arange(0, 64, 2)
    sub_pred = model._inr_values(mean, model.coords[idx])
    _, logs = model._elbo(sub_pred, model.domain.from_grid(x)[:, idx], mean, logvar)
    part = model.likelihood(sub_pred, model.domain.from_grid(x)[:, idx])
    torch.testing.assert_close(logs["nll"], (part * 64).mean())
    assert abs(float(logs["nll"].detach()) - float(full.detach().mean() * 64)) < 0.5 * float(full.detach().mean().abs() * 64)


def test_learned_log_variance_is_trained_in_stage_vae():
    model = _toy_model(nll_reduction="sum", kl_reduction="sum")
    assert any(p is model.likelihood.logvar for p in model.stage_parameters("vae"))
    assert not any(p is model.likelihood.logvar for p in model.stage_parameters("prior"))
    before = float(model.likelihood.logvar.detach())
    opt = torch.optim.Adam(model.stage_parameters("vae"), lr=1e-2)
    loss, _ = model.vae_loss(torch.rand(4, 1, 8, 8) * 2 - 1)
    loss.backward()
    opt.step()
    assert float(model.likelihood.logvar.detach()) != before


# -- item 3: the reference tokenizer and the CelebA-HQ 64 hypernetwork's 8,056,899 parameters -------

def _reference_hd_count(dim=192, depth=(6, 6), heads=6, head_dim=48, ff=768, latent=(3, 16, 16), patch=2,
                        tok_heads=4, tok_head_dim=32, siren=(2, 256, 4, 3), n_groups=64) -> int:
    """The count the reference code prints, from its layer sizes alone."""
    inner = heads * head_dim
    attention = dim * inner + dim * 2 * inner + inner * dim + dim  # to_q, to_kv (no bias), to_out
    feed_forward = dim * ff + ff + ff * dim + dim
    layer_norm = 2 * dim
    encoder = depth[0] * (2 * layer_norm + attention + feed_forward)
    decoder = depth[1] * (3 * layer_norm + 2 * attention + feed_forward)
    c, h, w = latent
    n_tokens = (h // patch) * (w // patch)
    prefc = c * patch * patch * dim + dim
    posemb = n_tokens * dim
    local = 3 * dim * dim + 3 * dim + dim * dim + dim  # nn.MultiheadAttention(dim, n_head): in_proj + out_proj
    t_inner = tok_heads * tok_head_dim
    global_attn = dim * t_inner + dim * 2 * t_inner + t_inner * dim + dim
    tokenizer = prefc + posemb + local + global_attn
    d_in, width, hidden, d_out = siren
    dims = [d_in] + [width] * hidden + [d_out]
    base = sum((a + 1) * b for a, b in zip(dims[:-1], dims[1:]))
    tokens = sum(min(n_groups, b) for b in dims[1:]) * dim
    return encoder + decoder + tokenizer + base + tokens


def test_reference_tokenizer_gives_the_papers_8056899_parameters():
    assert _reference_hd_count() == 8_056_899
    model = LDMI.from_config(recipe_config("ldmi", "image", "paper"))
    hd = model.hypernet
    assert hd.config.tokenizer == "reference"
    counted = count(hd.transformer, hd.tokenizer, hd.base_weights) + hd.weight_tokens.numel()
    assert counted == 8_056_899
    # the standard tokenizer (residuals, LayerNorms, 4x32 local heads) is another size
    std = inrkit.build("hypernets", "hd", context={"inr": hd.inr, "latent_shape": (3, 16, 16)},
                       **{**hd.config.model_dump(), "tokenizer": "standard"})
    assert count(std.tokenizer) != count(hd.tokenizer)


def test_reference_tokenizer_keeps_samples_apart():
    inr = inrkit.build("inrs", "siren", in_dim=2, out_dim=1, width=16, depth=2)
    hd = inrkit.build("hypernets", "hd", context={"inr": inr, "latent_shape": (2, 4, 6)}, dim=16, encoder_depth=1,
                      decoder_depth=1, n_heads=2, head_dim=8, ff_dim=32, patch_size=2, tokenizer_heads=2,
                      tokenizer_head_dim=8, n_groups=8, tokenizer="reference").eval()
    z = torch.randn(3, 2, 4, 6)
    alone = hd(z[:1])
    together = hd(torch.cat([z[:1], torch.randn(2, 2, 4, 6)]))
    for name in alone:
        torch.testing.assert_close(alone[name], together[name][:1], atol=1e-5, rtol=1e-5)


def test_siren_reference_biases_and_output_offset():
    inr = inrkit.build("inrs", "siren", in_dim=2, out_dim=1, width=16, depth=2, bias_init="zero", out_offset=0.5)
    params = inr.init_params()
    assert all(torch.count_nonzero(p[-1]) == 0 for p in params.values())
    zero = {k: torch.zeros_like(v)[None] for k, v in params.items()}
    out = inr(zero, torch.rand(5, 2))
    torch.testing.assert_close(out, torch.full((1, 5, 1), 0.5))


def test_unet_attention_at_ldm_resolutions():
    from inrkit.priors.unet import UNet

    net = UNet(dims=2, channels=3, model_channels=8, channel_mult=[1, 2, 3, 4], num_res_blocks=1,
               num_head_channels=8, attention_resolutions=[8, 4, 2])
    assert [len(level.attentions) > 0 for level in net.down_blocks] == [False, True, True, True]
    assert [len(level.attentions) > 0 for level in net.up_blocks] == [True, True, True, False]
    out = net(torch.randn(2, 3, 11, 22), torch.tensor([3, 500]))  # the ERA5 latent runs (pad and crop)
    assert out.shape == (2, 3, 11, 22)


# -- item 4: DDIM "uniform" timesteps as CompVis' make_ddim_timesteps --------------------------------

@pytest.mark.parametrize("T,steps", [(1000, 200), (1000, 50), (1000, 300), (1000, 7), (10, 3)])
def test_uniform_spacing_is_compvis_make_ddim_timesteps(T, steps):
    c = T // steps
    compvis = np.asarray(list(range(0, T, c))) + 1  # ldm/modules/diffusionmodules/util.py
    assert ddim_timesteps(T, steps, "uniform") == [int(t) for t in compvis[::-1]]


def test_uniform_spacing_200_steps_and_its_limits():
    ts = ddim_timesteps(1000, 200, "uniform")
    assert ts[0] == 996 and ts[-1] == 1 and len(ts) == 200
    assert len(ddim_timesteps(1000, 300, "uniform")) == 334  # as the original: more when steps ∤ T
    assert previous_timestep(ts, len(ts) - 1, "uniform") == 0
    assert previous_timestep(ts, len(ts) - 1, "trailing") == -1
    with pytest.raises(inrkit.errors.ConfigError, match="uniform"):
        ddim_timesteps(1000, 600, "uniform")


def test_uniform_ddim_follows_compvis_alphas_prev():
    """η = 1: CompVis uses alphas_prev = [ᾱ_0] + ᾱ[ts[:-1]], so its last step adds noise too."""
    schedule = NoiseSchedule(100, "linear", 1.5e-3, 1.95e-2)
    eps_fn = lambda x, t: 0.1 * x  # noqa: E731
    ours = ddim_sample(eps_fn, schedule, (2, 3), steps=10, eta=1.0, spacing="uniform",
                       generator=torch.Generator().manual_seed(5))
    ts = np.asarray(list(range(0, 100, 10))) + 1
    ab = schedule.alphas_cumprod64.numpy()
    alphas, alphas_prev = ab[ts], np.asarray([ab[0]] + ab[ts[:-1]].tolist())
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 3, generator=gen)
    for i in reversed(range(len(ts))):
        a, ap = float(alphas[i]), float(alphas_prev[i])
        sigma = math.sqrt((1 - ap) / (1 - a)) * math.sqrt(1 - a / ap)
        e = 0.1 * x
        x0 = (x - math.sqrt(1 - a) * e) / math.sqrt(a)
        x = math.sqrt(ap) * x0 + math.sqrt(1 - ap - sigma**2) * e + sigma * torch.randn(2, 3, generator=gen)
    torch.testing.assert_close(ours, x, atol=1e-5, rtol=1e-5)


def test_paper_presets_sample_with_ddim_200_eta_1_uniform():
    for modality in ("image", "sphere", "occupancy"):
        prior = recipe_config("ldmi", modality, "paper")["model"]["prior"]
        assert (prior["steps"], prior["eta"], prior["spacing"]) == (200, 1.0, "uniform")
        assert recipe_config("ldmi", modality, "inrkit-v1")["model"]["prior"]["spacing"] == "trailing"


def test_sampling_defaults_come_from_the_prior_config():
    model = LDMI.from_config(toy_run_config())
    seen = {}

    def fake(n, generator=None, **kw):
        seen.update(kw)
        return torch.zeros(n, *model.latent_shape)

    model.prior.sample = fake
    model.sample_latents(2, seed=0)
    assert seen["steps"] is None and seen["eta"] is None  # the prior fills in its configured values


# -- item 5: GASP's released configuration and the paper's Table 2 size -------------------------------

def _gasp_counts(n_frequencies: int, latent=64, hidden=(256, 512), layers=(128, 128, 128), out=3) -> tuple[int, int]:
    dims = [2 * n_frequencies, *layers, out]
    inr = sum((a + 1) * b for a, b in zip(dims[:-1], dims[1:]))
    sizes = [latent, *hidden]
    trunk = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
    return inr, trunk + (hidden[-1] + 1) * inr


@pytest.mark.parametrize("preset,n_freq,inr_params,hyper_params",
                         [("gasp", 128, 66_307, 34_163_715), ("gasp-table2", 64, 49_923, 25_758_723)])
def test_gasp_presets_have_gasps_sizes_exactly(preset, n_freq, inr_params, hyper_params):
    assert _gasp_counts(n_freq) == (inr_params, hyper_params)
    cfg = recipe_config("ldmi", "image", preset)
    inr = build_part("inrs", cfg["model"]["inr"])
    latent = (1, 8, 8)
    hyper = build_part("hypernets", cfg["model"]["hypernet"], inr=inr, latent_shape=latent)
    assert inr.num_params == inr_params
    assert count(hyper) == hyper_params
    slopes = {m.negative_slope for m in hyper.modules() if isinstance(m, torch.nn.LeakyReLU)}
    assert slopes == {0.1}
    enc = build_part("encoders", cfg["model"]["encoder"], in_channels=3, grid_shape=(64, 64))
    assert tuple(enc.latent_shape) == latent
    # the INR: LeakyReLU(0.1) and a final tanh
    big = {k: v[None] * 50 for k, v in inr.init_params().items()}
    assert inr(big, torch.rand(100, 2) * 2 - 1).abs().max() <= 1.0


# -- debug config: each reference setting beside its resolved value ----------------------------------

def test_references_name_existing_presets_and_fields():
    table = yaml.safe_load(REFERENCES_FILE.read_text())
    presets = available_presets()
    for key, entries in table.items():
        modality, preset = key.split("-", 1)
        assert preset in presets[modality], key
        lines = annotated_references(recipe_config("ldmi", modality, preset), modality, preset)
        assert len(lines) == len(entries) and not any("<not set>" in line for line in lines), key


def test_debug_config_prints_each_reference_setting_with_its_value(capsys):
    assert run_cli(["debug", "config", "--modality", "sphere", "--preset", "paper", "--set", "model.beta=2e-6"]) == 0
    out = capsys.readouterr().out
    assert "# model.beta: 2e-06  # era5_ivae.yaml lossconfig kl_weight: 1.0e-6" in out
    assert "# model.prior.spacing: uniform  # make_ddim_timesteps" in out
    assert "# model.kl_reduction: sum  # GaussianLoss" in out
    for path in preset_references("sphere", "paper"):
        assert f"# {path}: " in out
    assert yaml.safe_load(out)["model"]["beta"] == 2e-6  # still one YAML document
    assert run_cli(["debug", "config", "--modality", "sphere", "--preset", "tiny"]) == 0
    assert "taken from the reference" not in capsys.readouterr().out


def test_paper_presets_take_a_training_step():
    """Each faithful preset builds and trains (one small batch, fewer points on CPU)."""
    for modality, shape in (("sphere", (2, 1, 46, 90)), ("occupancy", (2, 1, 32, 32, 32))):
        torch.manual_seed(0)
        model = LDMI.from_config(recipe_config("ldmi", modality, "paper"))
        x = (torch.rand(shape) > 0.5).float() if modality == "occupancy" else torch.rand(shape) * 2 - 1
        loss, logs = model.vae_loss(x, points=256)
        loss.backward()
        assert math.isfinite(float(loss.detach())) and math.isfinite(float(logs["kl"].detach()))
        assert model.prior.loss(model.encode(x)).isfinite()


# -- item 2: the CelebA-HQ stage-1 loss: L1 + LPIPS + PatchGAN with a learned log-variance ------------

def _vgg_file(path, with_heads: bool):
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    state = {"features.0.weight": torch.randn(4, 3, 3, 3, generator=g) * 0.3, "features.0.bias": torch.zeros(4),
             "features.2.weight": torch.randn(4, 4, 3, 3, generator=g) * 0.3, "features.2.bias": torch.zeros(4),
             "features.5.weight": torch.randn(8, 4, 3, 3, generator=g) * 0.3, "features.5.bias": torch.zeros(8)}
    if with_heads:
        state.update({"lin0.model.1.weight": torch.rand(1, 4, 1, 1, generator=g),
                      "lin1.model.1.weight": torch.rand(1, 8, 1, 1, generator=g)})
    save_file(state, str(path))
    return str(path)


def _gan_model(**likelihood):
    cfg = toy_run_config()
    cfg["model"]["domain"] = {"name": "toy_grid", "size": 16}
    cfg["model"].update({"likelihood": {"name": "l1_lpips_patchgan", "disc_start": 2, "disc_layers": 2,
                                        "disc_channels": 8, **likelihood},
                         "nll_reduction": "sum", "kl_reduction": "sum"})
    return LDMI.from_config(cfg)


def test_patchgan_starts_at_disc_start_and_trains_the_discriminator_with_its_own_optimiser():
    torch.manual_seed(0)
    model = _gan_model()
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    d0 = [p.detach().clone() for p in model.likelihood.discriminator.parameters()]
    params = model.stage_parameters("vae")
    assert not any(p is q for p in params for q in model.likelihood.discriminator.parameters())
    assert any(p is model.likelihood.logvar for p in params)
    _, logs1 = model.vae_loss(x)  # step 1 < disc_start: no adversarial term, D untouched
    assert "d_loss" not in logs1 and float(logs1["perceptual_active"]) == 0.0
    assert all(torch.equal(a, b) for a, b in zip(d0, model.likelihood.discriminator.parameters()))
    loss2, logs2 = model.vae_loss(x)  # step 2: D takes one Adam step, the generator gets g_loss
    assert {"d_loss", "g_loss", "d_weight"} <= set(logs2) and math.isfinite(float(logs2["d_weight"]))
    assert not all(torch.equal(a, b) for a, b in zip(d0, model.likelihood.discriminator.parameters()))
    loss2.backward()
    assert model.hypernet.last_layer().grad is not None
    assert int(model.likelihood.step) == 2 and "likelihood.step" in model.state_dict()


def test_patchgan_likelihood_needs_the_whole_grid():
    model = _gan_model()
    with pytest.raises(inrkit.errors.ConfigError, match="train.vae.points"):
        model.vae_loss(torch.rand(2, 1, 16, 16), points=32)


@pytest.mark.parametrize("with_heads", [False, True])
def test_lpips_term_from_a_local_file(tmp_path, with_heads):
    path = _vgg_file(tmp_path / "vgg.safetensors", with_heads)
    model = _gan_model(perceptual=path, disc_start=None)
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    _, logs = model.vae_loss(x)
    assert float(logs["perceptual_active"]) == 1.0 and float(logs["lpips"]) > 0
    from inrkit_ldmi.perceptual import PerceptualLoss

    net = PerceptualLoss(path, where="w")
    assert len(net.heads) == (2 if with_heads else 0)
    rgb = x.expand(-1, 3, -1, -1)
    assert torch.allclose(net(rgb, rgb), torch.zeros(2), atol=1e-6)
    missing = _gan_model(perceptual=str(tmp_path / "none.safetensors"))
    with pytest.raises(inrkit.errors.ConfigError, match="model.likelihood.perceptual: feature network file not found"):
        missing.vae_loss(x)


def test_patchgan_trains_end_to_end_with_the_trainer(tmp_path):
    cfg = toy_run_config()
    cfg["model"]["domain"] = {"name": "toy_grid", "size": 16}
    cfg["model"].update({"likelihood": {"name": "l1_lpips_patchgan", "disc_start": 3, "disc_layers": 2,
                                        "disc_channels": 8}, "nll_reduction": "sum", "kl_reduction": "sum"})
    cfg["train"]["prior"]["steps"] = 2
    model = LDMI.from_config(cfg)
    d0 = [p.detach().clone() for p in model.likelihood.discriminator.parameters()]
    model.fit(out=tmp_path / "run")
    assert int(model.likelihood.step) == 6
    assert not all(torch.equal(a, b) for a, b in zip(d0, model.likelihood.discriminator.parameters()))
    loaded = inrkit.load_run(tmp_path / "run")
    assert int(loaded.likelihood.step) == 6

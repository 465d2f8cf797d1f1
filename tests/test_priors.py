"""Latent priors: Gaussian, and the diffusion prior (schedule, DDIM strides, UNet on odd grids,
EMA, latent scaling, safetensors round trip) with a 1-D Gaussian-mixture check of both samplers."""
from __future__ import annotations

import math

import pytest
import torch

import inrkit
from inrkit.errors import ConfigError, DataError
from inrkit.io import load_state, save_state
from inrkit.priors.samplers import SPACINGS, ddim_timesteps
from inrkit.priors.ema import EMA
from inrkit.priors.schedule import NoiseSchedule, make_betas

TINY_UNET = dict(model_channels=8, channel_mult=[1, 2], num_res_blocks=1, num_head_channels=8)
TINY_MLP = dict(denoiser="mlp", mlp_hidden=16, mlp_layers=1)


def prior(latent_shape, name="diffusion", **cfg):
    return inrkit.build("priors", name, context=dict(latent_shape=latent_shape), **cfg)


@pytest.fixture
def one_thread():
    # Tiny networks run faster on one thread, and far faster when other tests share the cores.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# -- Gaussian ----------------------------------------------------------------------------------

def test_gaussian_prior_samples_standard_normal_and_its_loss_is_backward_safe():
    p = prior((2, 4, 4), name="gaussian")
    s = p.sample(5000, generator=torch.Generator().manual_seed(0), steps=10)   # sampler kwargs ignored
    assert s.shape == (5000, 2, 4, 4)
    assert abs(s.mean().item()) < 0.02 and abs(s.std().item() - 1) < 0.02
    torch.testing.assert_close(s, p.sample(5000, generator=torch.Generator().manual_seed(0)))
    z = torch.randn(3, 2, 4, 4, requires_grad=True)
    loss = p.loss(z)
    assert loss.item() == 0.0
    loss.backward()                                     # alone, with or without a graph behind z
    (p.loss(torch.randn(3, 2, 4, 4)) + z.sum()).backward()
    assert torch.all(z.grad == 1)
    assert p.loss(torch.full((1, 2, 4, 4), float("nan"))).item() == 0.0


# -- schedule and samplers ---------------------------------------------------------------------

def test_linear_schedule_is_ldm_linear_in_sqrt_beta():
    betas = make_betas("linear", 1000, 1.5e-3, 1.95e-2)
    assert math.isclose(betas[0].item(), 1.5e-3, rel_tol=1e-9) and math.isclose(betas[-1].item(), 1.95e-2, rel_tol=1e-9)
    assert torch.allclose(betas.sqrt().diff().diff(), torch.zeros(998, dtype=torch.float64), atol=1e-12)
    s = NoiseSchedule(1000)
    assert torch.all(s.alphas_cumprod.diff() < 0)
    assert math.isclose(s.alpha_bar(999), torch.prod(1 - betas).item(), rel_tol=1e-9)
    assert 1e-4 < s.alpha_bar(999) < 2e-4 and s.alpha_bar(-1) == 1.0    # LDM's x_T keeps ~1% signal
    cos = make_betas("cosine", 1000)
    assert torch.all((cos > 0) & (cos <= 0.999))
    with pytest.raises(ConfigError):
        make_betas("quadratic", 10)


def test_add_noise_is_the_forward_process():
    s = NoiseSchedule(100)
    x0, noise, t = torch.randn(3, 2, 5), torch.randn(3, 2, 5), torch.tensor([0, 50, 99])
    ab = s.alphas_cumprod[t].reshape(3, 1, 1)
    torch.testing.assert_close(s.add_noise(x0, noise, t), ab.sqrt() * x0 + (1 - ab).sqrt() * noise)


# "uniform" follows CompVis' rule instead (its own test in test_paper_fidelity.py)
@pytest.mark.parametrize("spacing", [s for s in SPACINGS if s != "uniform"])
@pytest.mark.parametrize("T,steps", [(1000, 1), (1000, 3), (1000, 7), (1000, 50), (1000, 999), (1000, 1000), (10, 3)])
def test_ddim_timesteps_are_strictly_decreasing_within_range(spacing, T, steps):
    ts = ddim_timesteps(T, steps, spacing)
    assert len(ts) == steps
    assert all(0 <= t <= T - 1 for t in ts)
    assert all(a > b for a, b in zip(ts, ts[1:]))
    if steps == T:
        assert ts == list(range(T - 1, -1, -1))
    if spacing == "trailing":
        assert ts[0] == T - 1
    if spacing == "linspace":
        assert ts[-1] == 0 and (steps == 1 or ts[0] == T - 1)
    if spacing == "leading":
        assert ts[-1] == 0 and ts[0] == (steps - 1) * (T // steps)


def test_ddim_timesteps_known_values_and_errors():
    assert ddim_timesteps(1000, 4, "trailing") == [999, 749, 499, 249]
    assert ddim_timesteps(1000, 4, "leading") == [750, 500, 250, 0]
    assert ddim_timesteps(1000, 4, "linspace") == [999, 666, 333, 0]
    with pytest.raises(ConfigError):
        ddim_timesteps(1000, 0)
    with pytest.raises(ConfigError):
        ddim_timesteps(1000, 1001)
    with pytest.raises(ConfigError, match="spacing"):
        ddim_timesteps(1000, 10, "quad")


# -- the UNet over latent grids of any size ----------------------------------------------------

@pytest.mark.parametrize("latent_shape", [(3, 11, 22), (4, 5, 7), (2, 3, 5, 7), (3, 8, 8)])
def test_unet_prior_on_odd_latent_grids_forward_backward_and_sample(latent_shape, one_thread):
    torch.manual_seed(0)
    p = prior(latent_shape, **TINY_UNET)
    unet = p.denoiser
    torch.nn.init.normal_(unet.conv_out.weight, std=0.1)   # zero at init would block every gradient
    x, t = torch.randn(2, *latent_shape), torch.tensor([3, 700])
    out = unet(x, t)
    assert out.shape == x.shape
    assert not torch.allclose(out[0], unet(x, torch.tensor([700, 700]))[0])   # t matters
    p.set_scale(x)
    p.loss(x).backward()
    grads = {n: q.grad for n, q in unet.named_parameters()}
    assert all(g is not None for g in grads.values())
    assert grads["conv_in.weight"].abs().sum() > 0 and grads["time_embedding.0.weight"].abs().sum() > 0
    assert p.sample(2, steps=3, generator=torch.Generator().manual_seed(0)).shape == (2, *latent_shape)


def test_unet_has_attention_only_at_the_lowest_level_when_asked():
    p = prior((3, 8, 8), **TINY_UNET)
    assert len(p.denoiser.down_blocks[0].attentions) == 0 and len(p.denoiser.down_blocks[-1].attentions) == 1
    assert len(p.denoiser.mid_block.attentions) == 1
    q = prior((3, 8, 8), **{**TINY_UNET, "attention": False})
    assert sum(len(level.attentions) for level in q.denoiser.down_blocks) == 0


def test_prior_errors():
    with pytest.raises(ConfigError, match="denoiser: mlp"):
        prior((8,), **TINY_UNET)
    p = prior((2, 4, 4), **TINY_UNET)
    with pytest.raises(DataError, match="do not match"):
        p.loss(torch.randn(2, 3, 4, 4))
    with pytest.raises(ConfigError, match="sampler"):
        p.sample(1, sampler="euler")
    with pytest.raises(ConfigError, match="unknown field"):
        prior((2, 4, 4), num_timestep=10)


# -- EMA -----------------------------------------------------------------------------------------

def test_ema_update_math_with_and_without_warmup():
    net = torch.nn.Linear(2, 1)
    p0 = net.weight.detach().clone()
    ema = EMA(net, decay=0.9, warmup=False)
    with torch.no_grad():
        net.weight.fill_(1.0)
    ema.update(net)
    with torch.no_grad():
        net.weight.fill_(3.0)
    ema.update(net)
    expected = 0.9 * (0.9 * p0 + 0.1 * 1.0) + 0.1 * 3.0
    torch.testing.assert_close(ema.params()["weight"], expected)
    assert int(ema.num_updates) == 2

    warm = EMA(net, decay=0.9999, warmup=True)
    assert math.isclose(warm.current_decay(), 2 / 11)
    with torch.no_grad():
        net.weight.fill_(5.0)
    warm.update(net)
    torch.testing.assert_close(warm.params()["weight"], (2 / 11) * torch.full_like(p0, 3.0) + (9 / 11) * 5.0)
    assert math.isclose(warm.current_decay(), 3 / 12)


def test_ema_weights_live_in_the_state_dict_and_survive_safetensors(tmp_path, one_thread):
    torch.manual_seed(0)
    p = prior((2, 6, 6), **TINY_UNET)
    z = torch.randn(8, 2, 6, 6) * 3
    p.set_scale(z)
    opt = torch.optim.Adam(p.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        p.loss(z).backward()
        opt.step()
        p.update_ema()
    keys = p.state_dict().keys()
    assert "ema.num_updates" in keys and "scale_factor" in keys
    assert sum(k.startswith("ema.") for k in keys) == 1 + sum(1 for _ in p.denoiser.parameters())
    assert not any(k.startswith("ema") for k, _ in p.named_parameters())        # optimisers never see them
    path = tmp_path / "prior.safetensors"
    save_state(p, path)
    q = prior((2, 6, 6), **TINY_UNET)
    load_state(q, path)
    assert bool(q.scale_is_set) and math.isclose(float(q.scale_factor), float(p.scale_factor))
    kw = dict(steps=4, eta=0.5)
    a = p.sample(3, generator=torch.Generator().manual_seed(1), **kw)
    torch.testing.assert_close(a, q.sample(3, generator=torch.Generator().manual_seed(1), **kw))
    live = p.sample(3, generator=torch.Generator().manual_seed(1), use_ema=False, **kw)
    assert not torch.allclose(a, live)   # EMA weights are really used by default


def test_ema_before_any_update_falls_back_to_live_weights():
    torch.manual_seed(0)
    p = prior((3,), **TINY_MLP)
    torch.nn.init.normal_(p.denoiser.proj_out.weight)
    kw = dict(steps=3, generator=None)
    x_T = torch.randn(2, 3)
    torch.testing.assert_close(p.sample(2, x_T=x_T, use_ema=True, **kw), p.sample(2, x_T=x_T, use_ema=False, **kw))


# -- latent scaling, sampler hooks ---------------------------------------------------------------

def test_scale_factor_is_set_once_and_sample_returns_unscaled_latents():
    torch.manual_seed(0)
    p = prior((3,), **TINY_MLP)
    z = torch.randn(500, 3) * 4
    assert math.isclose(p.set_scale(z), 1 / z.std().item(), rel_tol=1e-5)
    assert math.isclose(p.set_scale(z * 10), 1 / z.std().item(), rel_tol=1e-5)       # kept
    assert math.isclose(p.set_scale(z * 10, force=True), 0.1 / z.std().item(), rel_tol=1e-5)
    q = prior((3,), **TINY_MLP)
    q.load_state_dict(p.state_dict())
    q.scale_factor.fill_(2 * float(p.scale_factor))
    a = p.sample(4, generator=torch.Generator().manual_seed(0), steps=5)
    b = q.sample(4, generator=torch.Generator().manual_seed(0), steps=5)
    torch.testing.assert_close(a, 2 * b)          # same scaled sample, divided by different scales
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    p.scale_factor.fill_(0.5)
    q.scale_factor.fill_(1.0)
    torch.testing.assert_close(p.loss(z, generator=g1), q.loss(z * 0.5, generator=g2))   # loss on scaled z


def test_sampler_start_noise_callback_and_train_mode():
    torch.manual_seed(0)
    p = prior((3,), **TINY_MLP)
    torch.nn.init.normal_(p.denoiser.proj_out.weight)
    x_T = torch.randn(2, 3)
    a = p.sample(2, x_T=x_T, steps=5, eta=0.0, generator=torch.Generator().manual_seed(0))
    b = p.sample(2, x_T=x_T, steps=5, eta=0.0, generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(a, b)              # eta = 0 is deterministic given x_T
    seen = []

    def callback(i, t, x):
        seen.append(t)
        return torch.zeros_like(x) if i == 4 else None

    p.train()
    out = p.sample(2, x_T=x_T, steps=5, callback=callback)
    assert seen == [999, 799, 599, 399, 199] and torch.all(out == 0)
    assert p.denoiser.training                    # sample() puts the mode back


# -- DDIM (eta = 1, every step) against DDPM on a 1-D Gaussian mixture ------------------------

W, MU, SD = torch.tensor([0.3, 0.7]), torch.tensor([-1.0, 2.0]), 0.5


def mixture(n, g):
    k = torch.multinomial(W, n, replacement=True, generator=g)
    return (MU[k] + SD * torch.randn(n, generator=g)).unsqueeze(1)


def test_ddim_full_steps_eta_one_reproduces_ddpm_on_a_gaussian_mixture(one_thread):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    p = prior((1,), denoiser="mlp", mlp_hidden=64, mlp_layers=2, ema_decay=0.995)
    p.set_scale(mixture(4096, g))
    steps = 800
    opt = torch.optim.Adam(p.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        opt.zero_grad()
        p.loss(mixture(512, g), generator=g).backward()
        opt.step()
        sched.step()
        p.update_ema()

    mean = (W * MU).sum().item()
    var = SD**2 + (W * MU**2).sum().item() - mean**2          # 2.14
    n = 2000
    ddpm = p.sample(n, generator=torch.Generator().manual_seed(1), sampler="ddpm")[:, 0]
    ddim = p.sample(n, generator=torch.Generator().manual_seed(1), sampler="ddim", eta=1.0, steps=1000)[:, 0]
    fast = p.sample(n, generator=torch.Generator().manual_seed(1), sampler="ddim", eta=0.0, steps=50)[:, 0]
    # same noise drawn in the same order: the two samplers are one algorithm, step for step
    torch.testing.assert_close(ddim, ddpm, atol=1e-3, rtol=1e-3)
    for s in (ddpm, ddim, fast):
        assert abs(s.mean().item() - mean) < 0.12, s.mean()
        assert abs(s.var().item() / var - 1) < 0.12, s.var()
        assert abs((s > 0.5).float().mean().item() - W[1].item()) < 0.04   # the mode weights


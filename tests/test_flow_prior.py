"""The ``flow`` prior: log-likelihood against closed forms (an affine flow on a Gaussian, and the
autograd Jacobian of the whole map), inverses that invert, maximum-likelihood training, EMA,
weights round trip, errors, and an LDMI run trained and sampled with it from the CLI."""
from __future__ import annotations

import json
import math

import pytest
import torch

import inrkit
from conftest import run_cli, toy_run_config
from inrkit.errors import ConfigError, DataError
from inrkit.io import load_state, save_state
from inrkit_ldmi.model import LDMI

SMALL = dict(hidden=16, conditioner_layers=1)


def flow(latent_shape, **cfg):
    return inrkit.build("priors", "flow", context=dict(latent_shape=latent_shape), **{**SMALL, **cfg})


def perturb(p, scale=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in p.flow.parameters():
            t.add_(torch.randn(t.shape, generator=g) * scale)
    return p


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_registered():
    assert "flow" in inrkit.get_registry("priors").names()


def test_affine_flow_on_a_gaussian_matches_the_closed_form():
    """Scale factor c, elementwise (loc, log σ), a coupling with constant (s, t): ε = a z + b per
    dimension, so z ~ N(−b/a, 1/a²) and log p(z) is a sum of 1-D normal log-densities."""
    torch.manual_seed(0)
    p = flow((2, 3), n_layers=1)
    c, loc, ls = 0.7, torch.randn(6), torch.randn(6) * 0.5
    s, t = torch.randn(6) * 0.5, torch.randn(6)
    with torch.no_grad():
        p.scale_factor.fill_(c)
        affine, coupling = p.flow.layers
        affine.loc.copy_(loc)
        affine.log_scale.copy_(ls)
        coupling.out.bias.copy_(torch.cat([s, t]))
    free = 1 - coupling.mask
    s_eff = 3.0 * torch.tanh(s / 3.0) * free  # the layer's tanh bound
    a = c * torch.exp(-ls) * torch.exp(s_eff)
    b = -loc * torch.exp(-ls) * torch.exp(s_eff) + t * free
    z = torch.randn(50, 2, 3) * 2
    want = torch.distributions.Normal(-b / a, 1 / a.abs()).log_prob(z.flatten(1)).sum(-1)
    torch.testing.assert_close(p.log_prob(z), want, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(p.loss(z), -want.mean() / 6, atol=1e-5, rtol=1e-5)
    # Sampling is the inverse pass: its draws have that normal's moments.
    draws = p.sample(40000, torch.Generator().manual_seed(1)).flatten(1)
    torch.testing.assert_close(draws.mean(0), -b / a, atol=0.05, rtol=0.02)
    torch.testing.assert_close(draws.std(0), 1 / a.abs(), atol=0.05, rtol=0.02)


@pytest.mark.parametrize("kind", ["coupling", "planar"])
def test_log_prob_is_the_change_of_variables_with_the_autograd_jacobian(kind):
    p = perturb(flow((5,), flow=kind, n_layers=4), scale=0.4)
    p.scale_factor.fill_(1.3)
    z = torch.randn(6, 5)

    def to_noise(v):
        return p.flow(v[None] * 1.3)[0][0]

    for i in range(6):
        jac = torch.autograd.functional.jacobian(to_noise, z[i])
        eps = to_noise(z[i])
        want = -0.5 * (eps.square().sum() + 5 * math.log(2 * math.pi)) + torch.linalg.slogdet(jac)[1]
        torch.testing.assert_close(p.log_prob(z[i : i + 1])[0], want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kind,latent_shape", [("coupling", (3, 4, 4)), ("coupling", (1,)), ("planar", (2, 3, 3, 3)),
                                               ("planar", (7,))])
def test_inverse_inverts(kind, latent_shape):
    """In float64, so that what is checked is the algebra, not float32 rounding of a random map."""
    p = perturb(flow(latent_shape, flow=kind, n_layers=5), scale=0.15, seed=2).double()
    d = math.prod(latent_shape)
    x = torch.randn(16, d, dtype=torch.float64) * 2
    with torch.no_grad():
        eps, logdet = p.flow(x)
        assert not torch.allclose(eps, x)
        back, inv_logdet = p.flow(eps, inverse=True)
        torch.testing.assert_close(back, x, atol=1e-7, rtol=1e-7)
        torch.testing.assert_close(inv_logdet, -logdet, atol=1e-7, rtol=1e-7)
        e = torch.randn(16, d, dtype=torch.float64)
        torch.testing.assert_close(p.flow(p.flow(e, inverse=True)[0])[0], e, atol=1e-7, rtol=1e-7)


def test_planar_layers_stay_invertible_whatever_u():
    from inrkit.priors.flow_layers import Planar

    layer = Planar(4)
    with torch.no_grad():
        layer.u.copy_(-10 * layer.w)  # wᵀu ≪ −1: unconstrained, the map would fold over
    u_hat, wu_hat = layer.u_hat()
    assert float((layer.w @ u_hat).detach()) > -1 and torch.isclose(layer.w @ u_hat, wu_hat)
    x = torch.randn(200, 4)
    assert torch.isfinite(layer(x)[1]).all()
    torch.testing.assert_close(layer.inverse(layer(x)[0])[0], x, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kind,steps,tol", [("coupling", 400, 0.05), ("planar", 600, 0.08)])
def test_maximum_likelihood_learns_a_correlated_gaussian(kind, steps, tol):
    """Trained on a correlated 2-D Gaussian, the mean log-likelihood of fresh data approaches the
    closed form −H = −½ log det(2πe Σ), and the inverse pass samples its covariance."""
    torch.manual_seed(0)
    cov = torch.tensor([[1.0, 0.8], [0.8, 1.0]]) * 4
    mean = torch.tensor([1.0, -2.0])
    data = torch.distributions.MultivariateNormal(mean, cov)
    p = flow((2,), flow=kind, n_layers=4 if kind == "coupling" else 8, hidden=32)
    p.set_scale(data.sample((512,)))
    opt = torch.optim.Adam(p.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        p.loss(data.sample((256,))).backward()
        opt.step()
    neg_entropy = -0.5 * torch.logdet(2 * math.pi * math.e * cov)
    fit = p.log_prob(data.sample((4000,))).mean()
    assert abs(float(fit - neg_entropy)) < tol, (float(fit), float(neg_entropy))
    draws = p.sample(8000, torch.Generator().manual_seed(0), use_ema=False)
    torch.testing.assert_close(torch.cov(draws.T), cov, atol=0.4, rtol=0.1)
    torch.testing.assert_close(draws.mean(0), mean, atol=0.15, rtol=0.1)


def test_forward_backward_reaches_every_parameter():
    p = perturb(flow((3, 4, 4), n_layers=4))
    p.loss(torch.randn(8, 3, 4, 4)).backward()
    for name, t in p.named_parameters():
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0, name


def test_ema_sampling_and_weights_roundtrip(tmp_path):
    p = flow((2, 2, 2), n_layers=2, ema_decay=0.5, ema_warmup=False)
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    before = p.sample(4, g())
    perturb(p)  # "training" moved the live weights; no EMA update yet → samples use the live weights
    live = p.sample(4, g())
    assert not torch.allclose(live, before)
    torch.testing.assert_close(p.sample(4, g(), use_ema=True), p.sample(4, g(), use_ema=False))
    p.update_ema()  # shadow = ½ initial + ½ live
    ema = p.sample(4, g())
    assert not torch.allclose(ema, live)
    torch.testing.assert_close(p.sample(4, g(), use_ema=False), live)
    p.set_scale(torch.randn(64, 2, 2, 2) * 3)
    save_state(p, tmp_path / "flow.safetensors")
    q = flow((2, 2, 2), n_layers=2, ema_decay=0.5, ema_warmup=False)
    load_state(q, tmp_path / "flow.safetensors")
    torch.testing.assert_close(q.sample(4, g()), p.sample(4, g()))
    q.use_ema_weights()
    torch.testing.assert_close(q.sample(4, g(), use_ema=False), p.sample(4, g(), use_ema=True))


def test_temperature_and_sampler_keywords():
    p = flow((6,), n_layers=1)
    cold = p.sample(5000, torch.Generator().manual_seed(0), temperature=0.5, steps=10, eta=1.0)
    assert abs(float(cold.std()) - 0.5) < 0.02


def test_errors():
    with pytest.raises(DataError, match="do not match"):
        flow((3, 4, 4)).loss(torch.randn(2, 3, 4, 5))
    with pytest.raises(ConfigError):
        flow((3,), flow="radial")
    with pytest.raises(ConfigError):
        flow((3,), n_layers=0)
    with pytest.raises(DataError, match="standardise"):
        flow((3,)).set_scale(torch.ones(4, 3))
    with pytest.raises(ConfigError, match="no EMA"):
        inrkit.build("priors", "gaussian", context=dict(latent_shape=(3,))).use_ema_weights()


def test_ldmi_trains_its_flow_prior_in_stage_two(tmp_path):
    cfg = toy_run_config(prior={"steps": 30, "batch_size": 4, "lr": 3e-3})
    cfg["model"]["prior"] = {"name": "flow", "n_layers": 2, "hidden": 16, "ema_decay": 0.9}
    model = LDMI.from_config(cfg)
    summary = model.fit(out=tmp_path / "run")
    assert summary["stages"]["prior"]["steps"] == 30
    losses = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    prior = [r["loss"] for r in losses if r["stage"] == "prior"]
    assert prior[-1] < prior[0]
    assert float(model.prior.scale_factor) != 1.0 and int(model.prior.ema.num_updates) == 30
    loaded = inrkit.load_run(tmp_path / "run", device="cpu")
    torch.testing.assert_close(loaded.sample(2, seed=0), model.sample(2, seed=0))
    assert loaded.sample(2, seed=0).shape == (2, 1, 8, 8)


def test_cli_trains_and_samples_with_the_flow_prior(tmp_path):
    run = tmp_path / "run"
    args = ["train", "ldmi", "--modality", "sphere", "--preset", "tiny", "--out", str(run), "--device", "cpu",
            "--set", "model.prior={name: flow, flow: planar, n_layers: 4}", "--set", "data.n_items=8",
            "--set", "train.vae.steps=2", "--set", "train.prior.steps=3", "--set", "train.vae.batch_size=4",
            "--set", "train.prior.batch_size=4", "--set", "train.n_renders=2", "--set", "train.progress=false"]
    assert run_cli(args) == 0
    config = inrkit.runs.read_run_config(run)
    assert config["model"]["prior"]["name"] == "flow" and config["model"]["prior"]["flow"] == "planar"
    assert run_cli(["sample", str(run), "--n", "2", "--seed", "0"]) == 0
    assert any((run / "samples").glob("samples*seed0*"))


def test_log_prob_stays_fp32_under_bf16_autocast():
    p = perturb(flow((3, 4, 4), n_layers=3), scale=0.1)
    z = torch.randn(4, 3, 4, 4)
    want = p.log_prob(z)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        got = p.log_prob(z)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want)

"""INR families: parameter layout, SIREN initialisation and ω0, Fourier buffer, chunked evaluation."""
import math

import pytest
import torch

import inrkit
from inrkit.errors import ConfigError
from inrkit.io import load_state, save_state


def batched(params, b=1):
    return {k: v.unsqueeze(0).expand(b, -1, -1).clone() for k, v in params.items()}


def test_registered():
    assert {"siren", "fourier_mlp"} <= set(inrkit.get_registry("inrs").names())


def test_siren_reference_layout():
    inr = inrkit.build("inrs", "siren", in_dim=2, out_dim=3, width=256, depth=4)
    assert list(inr.param_shapes.items()) == [
        ("l0", (3, 256)), ("l1", (257, 256)), ("l2", (257, 256)), ("l3", (257, 256)), ("l4", (257, 3))]
    assert inr.num_params == 198_915
    init = inr.init_params()
    assert {k: tuple(v.shape) for k, v in init.items()} == dict(inr.param_shapes)


def test_fourier_mlp_reference_layout():
    inr = inrkit.build("inrs", "fourier_mlp", in_dim=2, out_dim=3, n_frequencies=64, width=128, depth=3)
    assert [s for s in inr.param_shapes.values()] == [(129, 128), (129, 128), (129, 128), (129, 3)]
    assert inr.num_params == 49_923


def test_siren_init_ranges():
    torch.manual_seed(0)
    for w0 in (30.0, 10.0):
        inr = inrkit.build("inrs", "siren", in_dim=2, width=256, depth=3, w0=w0, w0_initial=30.0)
        p = inr.init_params()
        # first layer: U(-1/in, 1/in), independent of ω0
        first = p["l0"][:-1]
        assert first.abs().max() <= 1 / 2 and first.abs().max() > 0.95 / 2
        # later layers: U(-√(6/in)/ω0, √(6/in)/ω0), with the ω0 of the hidden sines
        for name in ("l1", "l2", "l3"):
            bound = math.sqrt(6 / 256) / w0
            w = p[name][:-1]
            assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound
        # biases as nn.Linear draws them
        assert p["l1"][-1].abs().max() <= 1 / math.sqrt(256)
        assert inr.init_bounds()["l1"] == pytest.approx(math.sqrt(6 / 256) / w0)


def test_siren_applies_w0_initial_then_w0():
    torch.manual_seed(0)
    inr = inrkit.build("inrs", "siren", in_dim=2, out_dim=1, width=8, depth=2, w0=7.0, w0_initial=20.0)
    p = batched(inr.init_params())
    x = torch.rand(5, 2) * 2 - 1
    h = torch.sin(20.0 * (x @ p["l0"][0, :-1] + p["l0"][0, -1]))
    h = torch.sin(7.0 * (h @ p["l1"][0, :-1] + p["l1"][0, -1]))
    y = h @ p["l2"][0, :-1] + p["l2"][0, -1]
    torch.testing.assert_close(inr(p, x)[0], y)


def test_siren_init_keeps_preactivations_unit_scale():
    # the purpose of the init: ω0 (W h + b) stays O(1) deep in the network (not ~ω0, not ~1/ω0)
    torch.manual_seed(0)
    inr = inrkit.build("inrs", "siren", in_dim=2, out_dim=1, width=256, depth=4)
    p = batched(inr.init_params())
    x = torch.rand(2048, 2) * 2 - 1
    h = torch.sin(30 * (x @ p["l0"][0, :-1] + p["l0"][0, -1]))
    for name in ("l1", "l2", "l3"):
        pre = 30 * (h @ p[name][0, :-1] + p[name][0, -1])
        assert 0.5 < pre.std().item() < 2.5, name
        h = torch.sin(pre)


def test_siren_final_activation():
    inr = inrkit.build("inrs", "siren", width=16, depth=2, final_activation="sigmoid")
    y = inr(batched(inr.init_params(), 2), torch.rand(50, 2) * 2 - 1)
    assert y.shape == (2, 50, 3) and (y > 0).all() and (y < 1).all()


def test_fourier_buffer_is_persistent(tmp_path):
    a = inrkit.build("inrs", "fourier_mlp", n_frequencies=8, width=16, depth=2, sigma=3.0, seed=0)
    b = inrkit.build("inrs", "fourier_mlp", n_frequencies=8, width=16, depth=2, sigma=3.0, seed=1)
    assert "features.frequencies" in a.state_dict()
    params = batched(a.init_params())
    x = torch.rand(30, 2) * 2 - 1
    assert not torch.allclose(a(params, x), b(params, x))
    save_state(a, tmp_path / "inr.safetensors")
    load_state(b, tmp_path / "inr.safetensors")
    torch.testing.assert_close(a(params, x), b(params, x))


def test_fourier_features_follow_sigma_and_seed():
    a = inrkit.build("inrs", "fourier_mlp", n_frequencies=2000, sigma=3.0, seed=5)
    b = inrkit.build("inrs", "fourier_mlp", n_frequencies=2000, sigma=3.0, seed=5)
    assert torch.equal(a.features.frequencies, b.features.frequencies)
    assert a.features.frequencies.std().item() == pytest.approx(3.0, rel=0.05)


@pytest.mark.parametrize("name", ["siren", "fourier_mlp"])
def test_chunked_evaluation_matches(name):
    torch.manual_seed(0)
    inr = inrkit.build("inrs", name, in_dim=3, out_dim=2, width=16, depth=2)
    p = batched(inr.init_params(), 3)
    x = torch.rand(1000, 3) * 2 - 1
    torch.testing.assert_close(inr.evaluate(p, x, chunk=64), inr(p, x), rtol=1e-5, atol=1e-6)
    xb = torch.rand(3, 1000, 3) * 2 - 1
    torch.testing.assert_close(inr.evaluate(p, xb, chunk=100), inr(p, xb), rtol=1e-5, atol=1e-6)


def test_render_2048_squared_in_bounded_chunks(monkeypatch):
    inr = inrkit.build("inrs", "siren", in_dim=2, out_dim=1, width=4, depth=1)
    p = batched(inr.init_params())
    r = 2048
    axis = (torch.arange(r) + 0.5) / r * 2 - 1
    x = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    seen = []
    forward = type(inr).forward

    def spy(self, params, coords):
        seen.append(coords.shape[-2])
        return forward(self, params, coords)

    monkeypatch.setattr(type(inr), "forward", spy)
    y = inr.evaluate(p, x, chunk=65536)
    assert y.shape == (1, r * r, 1)
    assert max(seen) <= 65536 and sum(seen) == r * r
    idx = torch.tensor([0, 12345, r * r - 1])
    torch.testing.assert_close(y[0, idx], forward(inr, p, x[idx])[0])


@pytest.mark.parametrize("name", ["siren", "fourier_mlp"])
def test_gradients_reach_params(name):
    inr = inrkit.build("inrs", name, width=8, depth=2)
    p = {k: v.requires_grad_() for k, v in batched(inr.init_params(), 2).items()}
    inr(p, torch.rand(20, 2)).square().mean().backward()
    for k, v in p.items():
        assert v.grad is not None and v.grad.abs().sum() > 0, k


def test_bad_configs():
    with pytest.raises(ConfigError, match="depth"):
        inrkit.build("inrs", "siren", depth=0)
    with pytest.raises(ConfigError, match="unknown field 'widht'"):
        inrkit.build("inrs", "fourier_mlp", widht=3)
    with pytest.raises(ConfigError, match="activation"):
        inrkit.build("inrs", "fourier_mlp", activation="tanh")

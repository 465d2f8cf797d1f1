"""Hypernetworks: reference parameter counts, forward/backward, batch independence, updates, mixture."""
import pytest
import torch

import inrkit
from inrkit.errors import ConfigError, InrkitError
from inrkit.hypernets.attention import WindowedAttention
from inrkit.io import load_state, save_state

TINY_HD = dict(dim=16, encoder_depth=1, decoder_depth=1, n_heads=2, head_dim=8, ff_dim=32,
               tokenizer_heads=2, tokenizer_head_dim=8, n_groups=4)


def build_hd(latent_shape, inr=None, **cfg):
    inr = inr or inrkit.build("inrs", "siren", in_dim=2, out_dim=3, width=8, depth=2)
    return inrkit.build("hypernets", "hd", context={"inr": inr, "latent_shape": latent_shape}, **{**TINY_HD, **cfg})


def assert_all_grads(model):
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert sum(p.grad.abs().sum() for p in model.parameters()) > 0


def test_registered():
    assert {"hd", "mlp", "mixture"} <= set(inrkit.get_registry("hypernets").names())


def test_hd_reference_counts():
    inr = inrkit.build("inrs", "siren", in_dim=2, out_dim=3, width=256, depth=4)
    hd = inrkit.build("hypernets", "hd", context={"inr": inr, "latent_shape": (3, 16, 16)})
    assert hd.tokenizer.n_tokens == 64
    assert hd.n_weight_tokens == 259
    assert [hi - lo for lo, hi in hd.token_ranges.values()] == [64, 64, 64, 64, 3]
    rep = hd.parameter_report()
    assert rep["base_weights"] == inr.num_params == 198_915
    assert rep["weight_tokens"] == 259 * 192
    assert rep["reference_total"] == rep["transformer"] + rep["tokenizer"] + rep["base_weights"] + rep["weight_tokens"]
    assert rep["reference_total"] == pytest.approx(8.06e6, rel=0.01)
    assert rep["reference_total"] == 8_007_939  # 4×32 tokenizer attention; the paper's 8.06M used full-width MHA
    assert rep["total"] == rep["reference_total"] + rep["token_heads"] == sum(p.numel() for p in hd.parameters())


def test_mlp_reference_counts():
    inr = inrkit.build("inrs", "fourier_mlp", in_dim=2, out_dim=3, n_frequencies=64, width=128, depth=3)
    mlp = inrkit.build("hypernets", "mlp", context={"inr": inr, "latent_shape": (64,)}, hidden=[256, 512])
    assert inr.num_params == 49_923
    rep = mlp.parameter_report()
    assert rep["total"] == 25_758_723
    assert rep["head"] == 513 * 49_923


@pytest.mark.parametrize("latent_shape,in_dim", [((3, 4, 4), 2), ((2, 4, 4, 4), 3), ((2, 5, 3), 2)])
def test_hd_forward_backward(latent_shape, in_dim):
    torch.manual_seed(0)
    inr = inrkit.build("inrs", "siren", in_dim=in_dim, out_dim=2, width=8, depth=2)
    hd = build_hd(latent_shape, inr)
    params = hd(torch.randn(2, *latent_shape))
    assert {k: tuple(v.shape) for k, v in params.items()} == {k: (2, *s) for k, s in inr.param_shapes.items()}
    y = hd.decode(torch.randn(2, *latent_shape), torch.rand(30, in_dim) * 2 - 1)
    assert y.shape == (2, 30, 2)
    y.square().mean().backward()
    assert_all_grads(hd)
    assert hd.tokenizer.embed.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("latent_shape,in_dim", [((3, 4, 4), 2), ((2, 4, 4, 4), 3), ((2, 5, 5), 2)])
def test_hd_decode_does_not_depend_on_the_batch(latent_shape, in_dim):
    torch.manual_seed(1)
    inr = inrkit.build("inrs", "siren", in_dim=in_dim, out_dim=3, width=8, depth=2)
    hd = build_hd(latent_shape, inr).eval()
    z = torch.randn(4, *latent_shape)
    x = torch.rand(25, in_dim) * 2 - 1
    with torch.no_grad():
        together = hd.decode(z, x)
        others = hd.decode(torch.cat([z[:1], torch.randn(5, *latent_shape)]), x)
        for i in range(4):
            torch.testing.assert_close(hd.decode(z[i : i + 1], x)[0], together[i], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(others[0], together[0], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(together[0], together[1])  # the latent does matter


def test_windowed_attention_stays_in_its_window_and_sample():
    torch.manual_seed(0)
    attn = WindowedAttention(dim=8, window=2, n_heads=2, head_dim=4)
    x = torch.randn(2, 7, 8)  # 7 tokens: the last window is short (padded and masked)
    y = attn(x)
    x2 = x.clone()
    x2[0, 2] += 1.0  # a token of window 1 of sample 0
    y2 = attn(x2)
    torch.testing.assert_close(y2[0, :2], y[0, :2])  # window 0 unchanged
    torch.testing.assert_close(y2[0, 4:], y[0, 4:])  # windows 2, 3 unchanged
    torch.testing.assert_close(y2[1], y[1])  # other sample unchanged
    assert not torch.allclose(y2[0, 3], y[0, 3])  # its window partner changed
    # the short last window equals attention over its single real token
    torch.testing.assert_close(attn(x[:, 6:7]), y[:, 6:7])


def test_hd_scale_update_starts_from_base_weights():
    hd = build_hd((3, 4, 4))
    for head in hd.token_heads.values():
        torch.nn.init.zeros_(head[1].weight)
        torch.nn.init.zeros_(head[1].bias)
    params = hd(torch.randn(2, 3, 4, 4))
    for name, p in params.items():
        torch.testing.assert_close(p, hd.base_weights[name].expand(2, -1, -1))


def test_hd_normalize_update():
    hd = build_hd((3, 4, 4), update="normalize")
    params = hd(torch.randn(2, 3, 4, 4))
    for name, p in params.items():
        torch.testing.assert_close(p[:, :-1].norm(dim=1), torch.ones(2, p.shape[2]))
        torch.testing.assert_close(p[:, -1], hd.base_weights[name][-1].expand(2, -1))  # shared bias row


def test_hd_rejects_bad_groups_and_latents():
    inr = inrkit.build("inrs", "siren", width=12, depth=1)
    with pytest.raises(ConfigError, match="'l0' has 12 outputs"):
        build_hd((3, 4, 4), inr, n_groups=8)
    hd = build_hd((3, 4, 4))
    with pytest.raises(InrkitError, match=r"hypernets/hd: expected latents of shape \(B, 3, 4, 4\)"):
        hd(torch.randn(2, 3, 4, 5))
    mlp = inrkit.build("hypernets", "mlp", context={"inr": inr, "latent_shape": (6,)}, hidden=[4])
    with pytest.raises(InrkitError, match="hypernets/mlp: expected latents"):
        mlp(torch.randn(2, 7))


def test_hd_weights_roundtrip(tmp_path):
    inr = inrkit.build("inrs", "fourier_mlp", n_frequencies=4, width=8, depth=1, seed=3)
    a = build_hd((3, 4, 4), inr)
    b = build_hd((3, 4, 4), inrkit.build("inrs", "fourier_mlp", n_frequencies=4, width=8, depth=1, seed=4))
    save_state(a, tmp_path / "hd.safetensors")
    load_state(b, tmp_path / "hd.safetensors")
    z, x = torch.randn(2, 3, 4, 4), torch.rand(10, 2)
    torch.testing.assert_close(a.decode(z, x), b.decode(z, x))


def test_mlp_forward_backward_and_init():
    torch.manual_seed(0)
    inr = inrkit.build("inrs", "siren", width=8, depth=2)
    mlp = inrkit.build("hypernets", "mlp", context={"inr": inr, "latent_shape": (3, 4, 4)}, hidden=[16, 32])
    y = mlp.decode(torch.randn(2, 3, 4, 4), torch.rand(20, 2))
    assert y.shape == (2, 20, 3)
    y.square().mean().backward()
    assert_all_grads(mlp)
    # emitted params start at a SIREN initialisation (head bias) plus a small z-dependent spread
    still = inrkit.build("hypernets", "mlp", context={"inr": inr, "latent_shape": (3, 4, 4)}, hidden=[16], head_init_scale=0.0)
    p = still(torch.randn(3, 3, 4, 4))
    bounds = inr.init_bounds()
    for name, v in p.items():
        assert torch.equal(v[0], v[1])
        assert v[0, :-1].abs().max() <= bounds[name]
    with torch.no_grad():
        p = mlp(torch.randn(2, 3, 4, 4))
        bias = dict(zip(p, mlp.net.head.bias.split([a * b for a, b in inr.param_shapes.values()])))
        for name, v in p.items():
            base = bias[name].view(inr.param_shapes[name])
            dev = (v - base).std() / base.std()
            assert 0 < dev < 0.5, name


def test_mixture_forward_backward_and_chunks():
    torch.manual_seed(0)
    inr = inrkit.build("inrs", "fourier_mlp", n_frequencies=4, width=8, depth=1)
    mix = inrkit.build("hypernets", "mixture", context={"inr": inr, "latent_shape": (6,)}, n_components=3,
                       hidden=[16], gate_hidden=[8], gate_frequencies=4, gate_latent_dim=4)
    z, x = torch.randn(2, 6), torch.rand(50, 2) * 2 - 1
    params = mix(z)
    w = mix.assignment_logits(params, x).softmax(-1)
    assert w.shape == (2, 50, 3)
    y = mix.evaluate(params, x, chunk=None)
    # the output is the gate-weighted sum of the components' INRs
    comps = torch.stack([inr(mix.component_params(params, k), x) for k in range(3)], -1)
    torch.testing.assert_close(y, (comps * w[:, :, None]).sum(-1))
    torch.testing.assert_close(mix.evaluate(params, x, chunk=7), y)
    torch.testing.assert_close(mix.evaluate(params, x.expand(2, -1, -1), chunk=7), y)
    mix.decode(z, x).square().mean().backward()
    assert_all_grads(mix)
    assert mix.gate[0].weight.grad.abs().sum() > 0 and mix.gate_latent.weight.grad.abs().sum() > 0


def test_mixture_of_one_is_its_component():
    inr = inrkit.build("inrs", "siren", width=8, depth=1)
    mix = inrkit.build("hypernets", "mixture", context={"inr": inr, "latent_shape": (5,)}, n_components=1, hidden=[8], gate_hidden=[8])
    z, x = torch.randn(2, 5), torch.rand(10, 2)
    params = mix(z)
    torch.testing.assert_close(mix.evaluate(params, x), inr(mix.component_params(params, 0), x))

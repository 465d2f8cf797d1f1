"""Convolutional decoders: exact output grids (odd ones too), periodic padding, key layout."""
from __future__ import annotations

import pytest
import torch

import inrkit
from inrkit.errors import ConfigError, DataError

TINY = dict(base_channels=8, channel_mult=[1, 2, 2], num_res_blocks=1)


def build(name, out_channels, grid, latent_shape, **cfg):
    ctx = dict(out_channels=out_channels, grid_shape=grid, latent_shape=latent_shape)
    return inrkit.build("decoders", name, context=ctx, **{**TINY, **cfg})


@pytest.mark.parametrize("name,c,grid,latent", [
    ("conv2d", 3, (16, 16), (3, 4, 4)),
    ("conv2d_sphere", 1, (46, 90), (4, 11, 22)),     # latent smaller than the 12×23 lowest level
    ("conv2d", 1, (23, 45), (3, 6, 12)),
    ("conv3d", 1, (8, 12, 6), (3, 2, 3, 2)),
])
def test_every_decoder_runs_forward_and_backward_to_the_exact_grid(name, c, grid, latent):
    torch.manual_seed(0)
    dec = build(name, c, grid, latent)
    z = torch.randn(2, *latent, requires_grad=True)
    out = dec(z)
    assert out.shape == (2, c, *grid)
    out.square().mean().backward()
    assert all(p.grad is not None for p in dec.parameters())
    assert z.grad.abs().sum() > 0


def test_encoder_decoder_pair_round_trips_shapes():
    ctx = dict(in_channels=1, grid_shape=(46, 90))
    enc = inrkit.build("encoders", "conv2d_sphere", context=ctx, latent_size=[11, 22], **TINY)
    dec = build("conv2d_sphere", 1, (46, 90), enc.latent_shape)
    mean, _ = enc(torch.randn(2, 1, 46, 90))
    assert dec(mean).shape == (2, 1, 46, 90)


@pytest.mark.parametrize("periodic", [True, False])
def test_periodic_decoder_is_equivariant_to_longitude_rolls(periodic):
    torch.manual_seed(0)
    dec = build("conv2d", 1, (16, 32), (3, 4, 8), periodic=periodic).eval()
    z = torch.randn(1, 3, 4, 8)
    with torch.no_grad():
        out, out_r = dec(z), dec(torch.roll(z, 1, dims=-1))
    rolled = torch.roll(out, 4, dims=-1)     # one latent column = 2^(levels-1) output columns
    if periodic:
        torch.testing.assert_close(out_r, rolled, atol=1e-5, rtol=1e-4)
    else:
        assert (out_r - rolled).abs().max() > 1e-3


def test_parameter_names_follow_the_autoencoderkl_layout():
    keys = set(build("conv2d", 3, (16, 16), (3, 4, 4)).state_dict())
    for key in ["conv_in.weight", "mid_block.resnets.1.conv2.weight", "mid_block.attentions.0.to_q.weight",
                "mid_block.attentions.0.to_out.0.weight", "up_blocks.2.resnets.0.conv_shortcut.weight",
                "up_blocks.0.resnets.1.norm1.weight", "up_blocks.1.upsamplers.0.conv.weight",
                "conv_norm_out.weight", "conv_out.bias"]:
        assert key in keys, key
    assert not any(k.startswith("up_blocks.2.upsamplers") for k in keys)   # none after the finest level


def test_decoder_errors():
    with pytest.raises(ConfigError, match="latent_shape"):
        build("conv2d", 1, (16, 16), (3, 4, 4, 4))
    dec = build("conv2d", 1, (16, 16), (3, 4, 4))
    with pytest.raises(DataError, match="expected latents"):
        dec(torch.randn(1, 3, 5, 4))

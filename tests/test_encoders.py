"""Convolutional encoders: shapes on odd grids, latent resizing, periodic padding, errors."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import inrkit
from inrkit.errors import ConfigError, DataError
from inrkit.encoders.pointset import grid_coords
from inrkit.nn import pad_grid

TINY = dict(base_channels=8, channel_mult=[1, 2, 2], num_res_blocks=1)


def build(name, in_channels, grid, **cfg):
    return inrkit.build("encoders", name, context=dict(in_channels=in_channels, grid_shape=grid), **{**TINY, **cfg})


@pytest.mark.parametrize("name,c,grid,latent", [
    ("conv2d", 3, (16, 16), (3, 4, 4)),
    ("conv2d_sphere", 1, (23, 45), (3, 6, 12)),      # ceil at each of the two downsamples
    ("conv3d", 1, (8, 12, 6), (3, 2, 3, 2)),
])
def test_every_encoder_runs_forward_and_backward(name, c, grid, latent):
    torch.manual_seed(0)
    enc = build(name, c, grid)
    assert enc.latent_shape == latent
    x = torch.randn(2, c, *grid)
    mean, logvar = enc(x)
    assert mean.shape == logvar.shape == (2, *latent)
    (mean.square().mean() + logvar.exp().mean()).backward()
    grads = [p.grad for p in enc.parameters()]
    assert all(g is not None for g in grads)
    assert enc.conv_in.weight.grad.abs().sum() > 0


def test_era5_grid_to_requested_latent_size():
    enc = build("conv2d_sphere", 1, (46, 90), latent_size=[11, 22], latent_channels=4)
    assert enc.latent_shape == (4, 11, 22)
    mean, logvar = enc(torch.randn(2, 1, 46, 90))
    assert mean.shape == (2, 4, 11, 22) and logvar.shape == (2, 4, 11, 22)


def test_asymmetric_downsampling_gives_floor_sizes():
    # The diffusers/LDM rule: 46×90 → 23×45 → 11×22 without any resize.
    enc = build("conv2d", 1, (46, 90), downsample_padding="asymmetric")
    assert enc.latent_shape == (3, 11, 22)
    assert enc(torch.randn(1, 1, 46, 90))[0].shape == (1, 3, 11, 22)


def test_logvar_is_clamped():
    enc = build("conv2d", 1, (8, 8))
    with torch.no_grad():
        enc.conv_out.bias[3:] = 1e4   # the log-variance half
    _, logvar = enc(torch.randn(1, 1, 8, 8))
    assert torch.all(logvar == 20.0)
    with torch.no_grad():
        enc.conv_out.bias[3:] = -1e4
    assert torch.all(enc(torch.randn(1, 1, 8, 8))[1] == -30.0)


def test_pad_grid_wraps_longitude_and_zero_pads_latitude():
    x = torch.arange(12.0).reshape(1, 1, 3, 4)
    y = pad_grid(x, [(1, 1), (1, 1)], periodic=True)
    assert y.shape == (1, 1, 5, 6)
    assert torch.equal(y[0, 0, 1:-1, 0], x[0, 0, :, -1])    # left pad = last column
    assert torch.equal(y[0, 0, 1:-1, -1], x[0, 0, :, 0])    # right pad = first column
    assert torch.all(y[0, 0, 0] == 0) and torch.all(y[0, 0, -1] == 0)


@pytest.mark.parametrize("dims,pads,stride,periodic", [
    (2, [(1, 1), (1, 1)], 1, False), (2, [(1, 1), (1, 1)], 2, True), (2, [(0, 1), (1, 1)], 2, False),
    (3, [(1, 1)] * 3, 1, False), (3, [(1, 1), (0, 1), (1, 1)], 2, True)])
def test_padded_conv_equals_a_conv_of_the_explicitly_padded_grid(dims, pads, stride, periodic):
    """Symmetric zero padding goes to the conv itself; the output is the conv of pad_grid's grid."""
    from inrkit.nn import conv

    torch.manual_seed(0)
    layer = conv(dims, 3, 4, stride=stride, periodic=periodic, pads=pads)
    x = torch.randn(2, 3, *([6, 8, 5][:dims]), requires_grad=True)
    op = torch.nn.functional.conv2d if dims == 2 else torch.nn.functional.conv3d
    want = op(pad_grid(x, pads, periodic), layer.weight, layer.bias, stride=stride)
    got = layer(x)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    g = torch.randn_like(got)
    torch.testing.assert_close(torch.autograd.grad((got * g).sum(), x)[0], torch.autograd.grad((want * g).sum(), x)[0],
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("periodic", [True, False])
def test_periodic_encoder_is_equivariant_to_longitude_rolls(periodic):
    torch.manual_seed(0)
    levels = len(TINY["channel_mult"])
    enc = build("conv2d", 1, (8, 32), periodic=periodic).eval()
    x = torch.randn(2, 1, 8, 32)
    shift = 2 ** levels                      # → 2^levels / 2^(levels-1) = 2 latent columns
    with torch.no_grad():
        mean, logvar = enc(x)
        mean_r, logvar_r = enc(torch.roll(x, shift, dims=-1))
    rolled = torch.roll(mean, shift // 2 ** (levels - 1), dims=-1)
    if periodic:
        torch.testing.assert_close(mean_r, rolled, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(logvar_r, torch.roll(logvar, 2, dims=-1), atol=1e-5, rtol=1e-4)
    else:   # zero padding sees the seam: the check above must be able to fail
        assert (mean_r - rolled).abs().max() > 1e-3


def test_sphere_alias_defaults_to_periodic():
    assert build("conv2d_sphere", 1, (8, 16)).config.periodic is True
    assert build("conv2d", 1, (8, 16)).config.periodic is False


def test_encoder_errors_are_one_line_user_errors():
    with pytest.raises(ConfigError, match="latent_size"):
        build("conv2d", 1, (46, 90), latent_size=[11, 22, 3])
    with pytest.raises(ConfigError, match="unknown field 'latent_chanels'"):
        build("conv2d", 1, (8, 8), latent_chanels=4)
    with pytest.raises(ConfigError, match="grid_shape"):
        build("conv3d", 1, (8, 8))
    enc = build("conv2d", 3, (8, 8))
    with pytest.raises(DataError, match="expected"):
        enc(torch.randn(1, 1, 8, 8))


def test_encoder_spec_round_trips():
    enc = build("conv2d_sphere", 1, (46, 90), latent_size=[11, 22])
    spec = inrkit.spec_of(enc)
    again = inrkit.build("encoders", spec.pop("name"), context=dict(in_channels=1, grid_shape=(46, 90)), **spec)
    again.load_state_dict(enc.state_dict())
    x = torch.randn(1, 1, 46, 90)
    torch.testing.assert_close(enc(x)[0], again(x)[0])


# -- the point-set encoder -------------------------------------------------------------------------

def pointset(grid=(8, 12), c=2, **cfg):
    cfg = {**dict(dim=16, heads=2, depth=1, num_frequencies=3, latent_size=[2, 3]), **cfg}
    return inrkit.build("encoders", "pointset", context=dict(in_channels=c, grid_shape=grid), **cfg).eval()


def test_pointset_encoder_forward_backward_and_grid_equals_points():
    torch.manual_seed(0)
    enc = pointset()
    assert enc.latent_shape == (3, 2, 3)
    x = torch.randn(2, 2, 8, 12)
    mean, logvar = enc(x)
    assert mean.shape == logvar.shape == (2, 3, 2, 3)
    (mean.sum() + logvar.exp().sum()).backward()
    assert all(p.grad is not None for p in enc.parameters())
    values, coords = x.flatten(2).transpose(1, 2), grid_coords((8, 12))
    assert coords.shape == (96, 2) and coords.min() > -1 and coords.max() < 1
    torch.testing.assert_close(enc(values, coords)[0], mean)
    perm = torch.randperm(96)                                   # a set: order does not matter
    torch.testing.assert_close(enc(values[:, perm], coords[perm])[0], mean, atol=1e-5, rtol=1e-4)


def test_pointset_encoder_takes_any_resolution_and_ignores_masked_points():
    torch.manual_seed(0)
    enc = pointset()
    assert enc(torch.randn(1, 2, 33, 17))[0].shape == (1, 3, 2, 3)      # not the grid it was built for
    x = torch.randn(2, 2, 8, 12)
    mask = torch.rand(2, 96) < 0.5
    values = x.flatten(2).transpose(1, 2)
    changed = torch.where(mask[..., None], values, torch.randn_like(values) * 10)
    coords = grid_coords((8, 12))
    a = enc(values, coords, mask)[0]
    torch.testing.assert_close(enc(changed, coords, mask)[0], a)
    assert not torch.allclose(enc(changed, coords)[0], a)              # without the mask they count
    # each sample is encoded on its own: the batch does not leak into it
    torch.testing.assert_close(enc(values[:1], coords, mask[:1])[0], a[:1], atol=1e-5, rtol=1e-4)
    with pytest.raises(DataError, match="mask"):
        enc(values, coords, torch.zeros(2, 96, dtype=torch.bool))


@pytest.mark.parametrize("shape, groups", [((3, 64, 5, 7), 32), ((3, 64, 5, 7), 8), ((2, 32, 3, 4, 5), 4),
                                           ((2, 8, 6, 6), 1), ((2, 6, 4, 4), 6)])
def test_group_norm_keeps_channels_last_and_equals_torch(shape, groups):
    """inrkit.nn.GroupNorm on a channels-last input: nn.GroupNorm's output and gradients (fp32,
    within 1e-5), in the input's layout; on NCHW input it is nn.GroupNorm itself. Groups of 1 to 8
    channels, each channel with its own offset (the statistics combine per-channel means and variances)."""
    from inrkit.nn import GroupNorm, norm

    torch.manual_seed(0)
    c = shape[1]
    ref = nn.GroupNorm(groups, c, eps=1e-6)
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5)
        ref.bias.uniform_(-0.5, 0.5)
    ours = GroupNorm(ref.num_groups, c, eps=1e-6)
    ours.load_state_dict(ref.state_dict())
    fmt = torch.channels_last if len(shape) == 4 else torch.channels_last_3d
    offsets = (torch.randn(c) * 4).view(1, c, *([1] * (len(shape) - 2)))
    x = (torch.randn(shape) * 3 + offsets).to(memory_format=fmt)
    x_ref, x_ours = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_ref, y = ref(x_ref), ours(x_ours)
    assert y.is_contiguous(memory_format=fmt) and not y.is_contiguous()
    assert torch.allclose(y, y_ref, atol=1e-5)
    g = torch.randn(shape)
    (y_ref * g).sum().backward()
    (y * g).sum().backward()
    assert torch.allclose(x_ours.grad, x_ref.grad, atol=1e-5)
    assert torch.allclose(ours.weight.grad, ref.weight.grad, atol=1e-4)
    assert torch.allclose(ours.bias.grad, ref.bias.grad, atol=1e-4)
    xc = x.contiguous()
    assert torch.equal(ours(xc), ref(xc))            # NCHW input: the same call as nn.GroupNorm
    if len(shape) == 4:                              # bf16 channels-last input: bf16 out, fp32 statistics
        yb = ours(x.to(torch.bfloat16))
        assert yb.dtype == torch.bfloat16 and torch.allclose(yb.float(), y_ref, atol=0.05)
    assert isinstance(norm(c), GroupNorm) and list(norm(c).state_dict()) == ["weight", "bias"]
    compiled = torch.compile(ours, backend="aot_eager", fullgraph=True)   # traces as one graph
    assert torch.allclose(compiled(x), y.detach(), atol=1e-5)


@pytest.mark.parametrize("name,c,grid", [("conv2d", 3, (16, 16)), ("conv3d", 1, (8, 8, 8))])
def test_channels_last_encoder_equals_the_nchw_one(name, c, grid):
    """An encoder with channels-last weights and input (train.channels_last) gives the NCHW
    encoder's mean and log-variance, and its GroupNorms keep the layout."""
    import copy

    torch.manual_seed(0)
    enc = build(name, c, grid, base_channels=32)
    fmt = torch.channels_last if len(grid) == 2 else torch.channels_last_3d
    x = torch.randn(2, c, *grid)
    ref = enc(x)
    enc_cl = copy.deepcopy(enc).to(memory_format=fmt)
    got = enc_cl(x.to(memory_format=fmt))
    for a, b in zip(ref, got):
        assert torch.allclose(a, b, atol=1e-4)

"""Property tests (hypothesis): the config parser and overrides, coordinate grids and their
inverses on all three domains, regridding and scaling. Example counts are fixed (derandomized
with a bounded number of examples) so that the suite's cost does not depend on luck or clocks."""
from __future__ import annotations

import math

import numpy as np
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import inrkit
from inrkit.config import apply_overrides, deep_merge, get_path, parse_override, parse_value

PROPS = settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8).filter(
    lambda k: k not in ("y", "n", "yes", "no", "on", "off", "true", "false", "null", "name"))
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
scalars = st.one_of(st.integers(-10**12, 10**12), finite, st.booleans(), keys, st.none())
plain = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(keys, inner, max_size=4)), max_leaves=12)


def yaml_scalar(value) -> str:
    """How a user would type the value after ``--set key=`` (YAML flow style, one line)."""
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("\n...").strip()


@PROPS
@given(st.dictionaries(keys, plain, max_size=5))
def test_configs_round_trip_through_yaml(config):
    assert yaml.safe_load(yaml.safe_dump(config, sort_keys=False)) == config


@PROPS
@given(st.lists(keys, min_size=1, max_size=4), plain)
def test_a_dotted_override_sets_exactly_its_key(path, value):
    base = {"train": {"seed": 1, "vae": {"lr": 1e-3}}, "model": {"name": "ldmi", "beta": 0.5}}
    out = apply_overrides(base, [f"{'.'.join(path)}={yaml_scalar(value)}"])
    assert get_path(out, ".".join(path)) == value
    # everything else is untouched (unless the new key sits inside or replaces it)
    for dotted, old in (("train.seed", 1), ("train.vae.lr", 1e-3), ("model.beta", 0.5)):
        parts = dotted.split(".")
        if parts[: len(path)] != path and path[: len(parts)] != parts:
            assert get_path(out, dotted) == old


@PROPS
@given(st.one_of(st.integers(-10**15, 10**15), finite))
def test_numbers_parse_back_to_themselves(number):
    for text in (repr(number), f"{number:e}" if isinstance(number, float) else str(number)):
        parsed = parse_value(text)
        assert isinstance(parsed, (int, float)) and not isinstance(parsed, bool)
        assert parsed == (float(text) if isinstance(number, float) else number)


@PROPS
@given(st.lists(keys, min_size=1, max_size=4), st.text(max_size=12))
def test_override_keys_split_on_the_first_equals(path, rest):
    keys_, _ = parse_override(f"{'.'.join(path)}=x{rest}")
    assert keys_ == path


@PROPS
@given(st.dictionaries(keys, plain, max_size=4), st.dictionaries(keys, plain, max_size=4))
def test_deep_merge_keeps_what_the_update_does_not_name(base, update):
    merged = deep_merge(base, update)
    for k, v in base.items():
        if k not in update:
            assert merged[k] == v
    for k, v in update.items():
        if not isinstance(v, dict):
            assert merged[k] == v


# -- coordinate grids and their inverses on all three domains --------------------------------------
@PROPS
@given(st.integers(1, 12), st.integers(1, 12), st.integers(1, 3), st.integers(1, 3))
def test_image_grid_is_cell_centres_and_to_grid_inverts_from_grid(h, w, batch, channels):
    domain = inrkit.build("domains", "image", resolution=[h, w], channels=1 if channels == 2 else channels)
    coords = domain.grid()
    assert coords.shape == (h * w, 2) and coords.abs().max() < 1
    rows = ((coords[:, 0] + 1) * h - 1) / 2  # the inverse map: coordinate -> pixel index
    cols = ((coords[:, 1] + 1) * w - 1) / 2
    assert torch.allclose(rows, torch.arange(h).repeat_interleave(w).float(), atol=1e-4)
    assert torch.allclose(cols, torch.arange(w).repeat(h).float(), atol=1e-4)
    x = torch.randn(batch, domain.channels, h, w)
    assert torch.equal(domain.to_grid(domain.from_grid(x)), x)


@PROPS
@given(st.integers(4, 9), st.integers(1, 2))
def test_occupancy_grid_indexes_voxels_xyz(r, batch):
    domain = inrkit.build("domains", "occupancy", resolution=r)
    coords = domain.grid()
    assert coords.shape == (r**3, 3)
    index = torch.round(((coords + 1) * r - 1) / 2).long()
    assert torch.allclose(((coords + 1) * r - 1) / 2, index.float(), atol=1e-4)
    flat = (index[:, 0] * r + index[:, 1]) * r + index[:, 2]
    assert torch.equal(flat, torch.arange(r**3))  # C order: x slowest, z fastest
    x = torch.rand(batch, 1, r, r, r)
    assert torch.equal(domain.to_grid(domain.from_grid(x)), x)


@PROPS
@given(st.integers(2, 20), st.integers(2, 24), st.sampled_from(["poles", "centres"]))
def test_sphere_grid_is_on_the_unit_sphere_and_inverts_to_lat_lon(n_lat, n_lon, layout):
    domain = inrkit.build("domains", "sphere", n_lat=n_lat, n_lon=n_lon, layout=layout)
    xyz = domain.grid().double()
    assert xyz.shape == (n_lat * n_lon, 3)
    assert torch.allclose(xyz.norm(dim=-1), torch.ones(len(xyz), dtype=torch.float64), atol=1e-6)
    lat = torch.rad2deg(torch.asin(xyz[:, 2].clamp(-1, 1))).reshape(n_lat, n_lon)
    assert np.allclose(lat[:, 0].numpy(), domain.latitudes(), atol=1e-3)
    away = lat[:, 0].abs() < 89  # longitude is undefined at the poles
    lon = torch.rad2deg(torch.atan2(xyz[:, 1], xyz[:, 0])).remainder(360).reshape(n_lat, n_lon)[away]
    expect = np.broadcast_to(domain.longitudes(), (int(away.sum()), n_lon))
    assert np.allclose(np.minimum(np.abs(lon.numpy() - expect), 360 - np.abs(lon.numpy() - expect)), 0, atol=1e-3)
    x = torch.randn(2, 1, n_lat, n_lon)
    assert torch.equal(domain.to_grid(domain.from_grid(x)), x)


# -- regridding and scaling --------------------------------------------------------------------------
@PROPS
@given(st.integers(3, 16), st.integers(3, 24), st.integers(2, 16), st.integers(2, 24), finite.filter(lambda v: abs(v) < 1e6))
def test_regridding_keeps_constants_and_bounds(src_lat, src_lon, dst_lat, dst_lon, level):
    from inrkit_modalities.sphere.regrid import Regridder

    slat, slon = np.linspace(90, -90, src_lat), np.arange(src_lon) * 360.0 / src_lon
    dlat, dlon = np.linspace(-90, 90, dst_lat), np.arange(dst_lon) * 360.0 / dst_lon + 1.0
    regrid = Regridder(slat, slon, dlat, dlon)
    const = regrid(np.full((src_lat, src_lon), level))
    assert const.shape == (dst_lat, dst_lon) and np.allclose(const, level, rtol=1e-12, atol=1e-9 * max(1, abs(level)))
    field = np.random.default_rng(src_lat * 31 + src_lon).normal(size=(src_lat, src_lon))
    out = regrid(field)
    assert field.min() - 1e-12 <= out.min() and out.max() <= field.max() + 1e-12  # linear: no overshoot


@PROPS
@given(st.integers(2, 16), st.integers(2, 24))
def test_regridding_onto_the_same_grid_is_exact_whatever_the_order(n_lat, n_lon):
    from inrkit_modalities.sphere.regrid import Regridder

    lat, lon = np.linspace(90, -90, n_lat), np.arange(n_lon) * 360.0 / n_lon
    field = np.random.default_rng(n_lat + 100 * n_lon).normal(size=(n_lat, n_lon))
    # the source stored south-to-north with longitudes in [-180, 180): the same cells, reordered
    src_lat = lat[::-1]
    src_lon = np.where(lon >= 180, lon - 360, lon)
    order = np.argsort(src_lon)
    regrid = Regridder(src_lat, src_lon[order], lat, lon)
    assert regrid.identity
    assert np.array_equal(regrid(field[::-1][:, order]), field)


@PROPS
@given(st.floats(150, 350), st.floats(1, 100), st.lists(st.floats(-2, 2), min_size=1, max_size=8))
def test_sphere_scaling_inverts(t_min, span, values):
    domain = inrkit.build("domains", "sphere", t_min=t_min, t_max=t_min + span)
    model = torch.tensor(values, dtype=torch.float64)
    assert torch.allclose(domain.to_model(domain.physical(model)), model, atol=1e-9)
    kelvin = domain.physical(model)
    assert math.isclose(float(domain.physical(torch.tensor(-1.0))), t_min, rel_tol=1e-6)
    assert math.isclose(float(domain.physical(torch.tensor(1.0))), t_min + span, rel_tol=1e-6)
    assert torch.all(torch.diff(kelvin) * torch.diff(model) >= 0)  # monotone


@PROPS
@given(st.lists(st.floats(0, 1), min_size=1, max_size=16))
def test_image_scaling_inverts(unit):
    from inrkit_modalities.image.datasets import to_model_space

    domain = inrkit.build("domains", "image", resolution=4, channels=1)
    x = torch.tensor(unit)
    model = to_model_space(x)
    assert model.min() >= -1 and model.max() <= 1
    assert torch.allclose(domain.physical(model), x, atol=1e-6)

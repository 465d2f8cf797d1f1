"""Units of the GASP .npz folder dataset (era5_npz): .npz files carry no units attribute, so the
temperature is taken as kelvin unless the dataset's ``units`` field says otherwise; either way it
is converted to the domain's ``variable_units`` before scaling to model space."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import inrkit
from inrkit.data import open_dataset
from inrkit.errors import InrkitError

from conftest import cli, one_line_error

N_LAT, N_LON = 7, 12


def sphere(**kw):
    return inrkit.build("domains", "sphere", **{"n_lat": N_LAT, "n_lon": N_LON, **kw})


def kelvin_fields(d, n=3):
    lat, lon = d.latitudes(), d.longitudes()
    rng = np.random.default_rng(0)
    base = 250.0 + 40.0 * np.cos(np.deg2rad(lat))[:, None] ** 2 + 0.0 * lon[None, :]
    return lat, lon, np.stack([base + rng.normal(0.0, 3.0, base.shape) + 5.0 * t for t in range(n)])


def write_folder(path, lat, lon, fields):
    path.mkdir()
    for t, f in enumerate(fields):
        np.savez(path / f"{t:04d}.npz", latitude=lat, longitude=lon, temperature=f)
    return path


def test_kelvin_folder_loads_to_model_space_of_its_values(tmp_path):
    d = sphere()
    lat, lon, k = kelvin_fields(d)
    folder = write_folder(tmp_path / "kelvin", lat, lon, k)
    assert d.dataset_for(folder) == "era5_npz"
    ds = open_dataset(d, folder, split="all")
    want = torch.from_numpy(d.to_model(k)[:, None]).float()
    assert ds.items.shape == (3, 1, N_LAT, N_LON)
    assert torch.allclose(ds.items, want, atol=1e-6)
    assert torch.allclose(d.physical(ds.items), torch.from_numpy(k[:, None]).float(), atol=1e-3)
    assert ds.meta["file_units"] == "K" and ds.meta["units"] == "K"
    # said explicitly, the same
    assert torch.equal(open_dataset(d, folder, split="all", units="kelvin").items, ds.items)


@pytest.mark.parametrize("units", ["degC", "°C", "C", "celsius", "degrees_Celsius"])
def test_celsius_folder_with_units_field(tmp_path, units):
    d = sphere()
    lat, lon, k = kelvin_fields(d)
    folder = write_folder(tmp_path / "celsius", lat, lon, k - 273.15)
    want = torch.from_numpy(d.to_model(k)[:, None]).float()
    got = open_dataset(d, folder, split="all", units=units)
    assert torch.allclose(got.items, want, atol=1e-5)
    assert got.meta["file_units"] == units
    # read as kelvin (the default), Celsius values land far below the scaling range: the field matters
    assert open_dataset(d, folder, split="all").items.max() < -3


def test_domain_in_celsius_converts_kelvin_files(tmp_path):
    dk = sphere()
    dc = sphere(variable_units="degC", t_min=202.66 - 273.15, t_max=320.93 - 273.15)
    lat, lon, k = kelvin_fields(dk)
    kelvin = write_folder(tmp_path / "kelvin", lat, lon, k)
    celsius = write_folder(tmp_path / "celsius", lat, lon, k - 273.15)
    want = open_dataset(dk, kelvin, split="all").items
    # GASP files (kelvin) into a Celsius domain: converted, not taken as Celsius
    assert torch.allclose(open_dataset(dc, kelvin, split="all").items, want, atol=1e-5)
    assert torch.allclose(open_dataset(dc, celsius, split="all", units="degC").items, want, atol=1e-5)


def test_bad_units_are_one_line_errors(tmp_path, capsys):
    d = sphere()
    lat, lon, k = kelvin_fields(d, n=2)
    folder = write_folder(tmp_path / "gasp", lat, lon, k)
    with pytest.raises(InrkitError, match=r"gasp \(data\.units\): units 'm' cannot be converted to the domain's 'K'"):
        open_dataset(d, folder, split="all", units="m")
    with pytest.raises(InrkitError, match="units"):
        open_dataset(d, folder, split="all", units="")
    base = ["data", "show", "--modality", "sphere", "--data", folder, "--out", tmp_path / "show.png",
            "--set", f"domain.n_lat={N_LAT}", "--set", f"domain.n_lon={N_LON}"]
    code, _, err = cli([*base, "--set", "data.units=degC"], capsys)
    assert code == 0, err
    assert (tmp_path / "show.png").stat().st_size > 0
    one_line_error(*cli([*base, "--set", "data.units=m"], capsys)[::2], "data.units", "units 'm' cannot be converted")

"""Legal-but-unusual data, as users have it: photos stored sideways (EXIF), regional grids,
files without a units attribute, unit spellings, folders whose files a time range empties, and
evaluating a run on other data that needs its own dataset settings."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from PIL import Image

import inrkit
from inrkit.data import open_dataset
from inrkit.errors import DataError
from inrkit_modalities.sphere.to_domain import coverage_gap
from inrkit_modalities.sphere.units import metric_suffix, unit_conversion, unit_kind

from conftest import cli, one_line_error


# -- images: the EXIF orientation --------------------------------------------------------------
def test_a_photo_stored_sideways_is_read_upright(tmp_path):
    """80x40 pixels as stored, left half white; EXIF orientation 6 (turn 90° clockwise to view):
    viewers show a 40x80 portrait with its top half white, and so must the dataset."""
    a = np.zeros((40, 80, 3), np.uint8)
    a[:, :40] = 255
    folder = tmp_path / "photos"
    folder.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(a).save(folder / "phone.jpg", exif=exif, quality=95)
    Image.fromarray(a).save(folder / "plain.jpg", quality=95)
    d = inrkit.build("domains", "image", resolution=16, channels=1)
    ds = open_dataset(d, folder, split="all")
    by_name = {p.name: ds[i][0] for i, p in enumerate(ds.files)}
    turned, plain = (by_name["phone.jpg"] + 1) / 2, (by_name["plain.jpg"] + 1) / 2
    assert turned[:4].mean() > 0.9 and turned[-4:].mean() < 0.1      # top white, bottom black
    assert abs(float(turned[:, :8].mean()) - float(turned[:, 8:].mean())) < 0.05  # no left/right split
    assert plain[:, :4].mean() > 0.9 and plain[:, -4:].mean() < 0.1  # the untagged one as stored


# -- sphere: coverage -------------------------------------------------------------------------
def test_global_grids_pass_and_regional_ones_are_named():
    glat = np.rad2deg(np.arcsin(np.polynomial.legendre.leggauss(64)[0]))   # Gaussian N32: outermost ±85.8
    assert coverage_gap(glat, np.arange(128) * 2.8125) is None
    assert coverage_gap(np.linspace(90, -90, 721), np.arange(-180, 180, 0.25)) is None
    assert coverage_gap(89.5 - np.arange(180), np.arange(360) + 0.5) is None          # cell centres
    europe = coverage_gap(np.arange(72, 34.9, -0.25), np.arange(-25, 45.01, 0.25))
    assert "latitudes 35 to 72" in europe and "longitudes" in europe
    band = coverage_gap(np.arange(-60, 60.01, 0.25), np.arange(0, 360, 0.25))
    assert band == "latitudes -60 to 60"


def _field(lat, lon, t=0):
    return (273.15 + 30 * np.cos(np.deg2rad(lat))[:, None] ** 2 + 0 * lon[None, :] + t).astype(np.float32)


def _nc(path, lat, lon, n_time=2, t0="2020-01-01", units="K", offset=0.0):
    data = np.stack([_field(lat, lon, t) for t in range(n_time)]) + offset
    attrs = {} if units is None else {"units": units}
    xr.Dataset({"t2m": (("time", "latitude", "longitude"), data, attrs)},
               coords={"time": pd.date_range(t0, periods=n_time, freq="D"), "latitude": lat, "longitude": lon}
               ).to_netcdf(path, engine="h5netcdf")


LAT, LON = np.linspace(90, -90, 7), np.arange(12) * 30.0


def test_a_regional_file_is_refused_naming_what_it_covers(tmp_path):
    path = tmp_path / "europe.nc"
    _nc(path, np.arange(72, 34.9, -2.5), np.arange(-25, 45.01, 2.5))
    d = inrkit.build("domains", "sphere", n_lat=7, n_lon=12)
    with pytest.raises(DataError, match=r"europe.nc.*covers only latitudes 37 to 72 and longitudes 335 to 45 .*whole globe"):
        open_dataset(d, path, split="all")


# -- sphere: units ----------------------------------------------------------------------------
def test_unit_spellings_of_one_unit_agree_and_case_is_kept():
    assert unit_kind("m/s") == unit_kind("m s**-1") == unit_kind("m s-1") == unit_kind("m.s^-1")
    assert unit_kind("m**2 s**-2") == unit_kind("m2/s2") == unit_kind("m^2/s^2")
    assert unit_kind("MPa") != unit_kind("mPa") and unit_kind("degrees_Celsius") == "degC"
    assert unit_conversion("m s**-1", "m/s", "x")(np.float32(3.5)) == np.float32(3.5)
    with pytest.raises(DataError, match="cannot be converted"):
        unit_conversion("m2 s-2", "m/s", "x")


def test_temperatures_convert_between_kelvin_celsius_and_fahrenheit():
    assert unit_kind("°F") == unit_kind("degrees_Fahrenheit") == unit_kind("deg_F") == "degF"
    kelvin = np.array([233.15, 273.15, 310.15], np.float32)
    for units, values in (("degC", [-40.0, 0.0, 37.0]), ("degF", [-40.0, 32.0, 98.6]), ("kelvin", kelvin)):
        values = np.asarray(values, np.float32)
        back = unit_conversion(units, "K", "x")(values)
        assert back.dtype == np.float32 and np.allclose(back, kelvin, atol=1e-4), units
        assert np.allclose(unit_conversion("K", units, "x")(kelvin), values, atol=1e-4), units
    assert np.allclose(unit_conversion("degF", "degC", "x")(np.float32(212.0)), 100.0, atol=1e-5)
    # K and degC stay a plain addition (bit for bit as before °F existed)
    x = np.float32(15.3)
    assert unit_conversion("degC", "K", "x")(x) == x + 273.15
    assert metric_suffix("degC") == metric_suffix("K") == "k" and metric_suffix("degF") == "degf"
    with pytest.raises(DataError, match="cannot be converted"):
        unit_conversion("degF", "m/s", "x")


def test_a_fahrenheit_netcdf_file_trains_on_the_kelvin_scale(tmp_path):
    """A NetCDF variable in °F is scaled and shifted into the domain's kelvin, and the start-of-training
    note says it was converted; the same field in K gives the same items."""
    d = inrkit.build("domains", "sphere", n_lat=7, n_lon=12)
    _nc(tmp_path / "k.nc", LAT, LON)
    path = tmp_path / "f.nc"
    data = (np.stack([_field(LAT, LON, t) for t in range(2)]) - 273.15) * 9 / 5 + 32
    xr.Dataset({"t2m": (("time", "latitude", "longitude"), data, {"units": "degrees_F"})},
               coords={"time": pd.date_range("2020-01-01", periods=2, freq="D"), "latitude": LAT, "longitude": LON}
               ).to_netcdf(path, engine="h5netcdf")
    ref, far = open_dataset(d, tmp_path / "k.nc", split="all"), open_dataset(d, path, split="all")
    assert torch.allclose(far.items, ref.items, atol=1e-5)
    assert "converted from degrees_F to K" in far.meta["conversion"]


def test_files_without_units_take_data_units_and_say_what_was_assumed(tmp_path):
    d = inrkit.build("domains", "sphere", n_lat=7, n_lon=12)
    _nc(tmp_path / "k.nc", LAT, LON)
    _nc(tmp_path / "c.nc", LAT, LON, units=None, offset=-273.15)          # Celsius, unlabelled
    ref = open_dataset(d, tmp_path / "k.nc", split="all")
    bare = open_dataset(d, tmp_path / "c.nc", split="all")
    assert "taken to be in K" in bare.meta["conversion"] and "assumed" in bare.meta["file_units"]
    given = open_dataset(d, tmp_path / "c.nc", split="all", units="degC")
    assert torch.allclose(given.items, ref.items, atol=1e-5) and not torch.allclose(bare.items, ref.items)
    assert given.meta["file_units"] == "degC" and "assumed" not in given.meta["conversion"]
    with pytest.raises(DataError, match="the file says units 'K' but data.units says 'degC'"):
        open_dataset(d, tmp_path / "k.nc", split="all", units="degC")
    assert len(open_dataset(d, tmp_path / "k.nc", split="all", units="kelvin")) == 2   # spellings of K agree


# -- sphere: a folder, a time range that empties a file -----------------------------------------
def test_a_time_range_that_empties_a_file_keeps_the_time_order(tmp_path):
    folder = tmp_path / "era5"
    (folder / "2020").mkdir(parents=True)
    _nc(folder / "b.nc", LAT, LON, n_time=3, t0="2020-01-01")          # January: outside the range
    _nc(folder / "a.nc", LAT, LON, n_time=3, t0="2020-02-01")
    _nc(folder / "2020" / "c.nc", LAT, LON, n_time=3, t0="2020-03-01")  # sorts first by path
    d = inrkit.build("domains", "sphere", n_lat=7, n_lon=12)
    ds = open_dataset(d, folder, split="all", time=["2020-02-01", "2020-03-02"])
    labels = ds.item_labels(range(len(ds)))
    assert labels == sorted(labels) and len(labels) == 5
    start, stop = ds.meta["time_range"]
    assert start.startswith("2020-02-01") and stop.startswith("2020-03-02")


# -- evaluate / inpaint on other data: its own dataset settings --------------------------------
def test_evaluate_on_other_data_takes_its_dataset_settings(tmp_path, capsys):
    import json

    data = tmp_path / "data"
    data.mkdir()
    _nc(data / "c.nc", LAT, LON, n_time=8, units=None, offset=-273.15)
    run = tmp_path / "run"
    sets = ["--set", "model.domain.n_lat=7", "--set", "model.domain.n_lon=12", "--set", "train.vae.steps=3",
            "--set", "train.prior.steps=2", "--set", "train.progress=false", "--set", "train.tensorboard=false"]
    code, _, err = cli(["train", "ldmi", "--modality", "sphere", "--preset", "tiny", "--data", data, "--out", run,
                        "--device", "cpu", "--set", "data.units=degC", *sets], capsys)
    assert code == 0, err
    code, _, err = cli(["evaluate", run, "--device", "cpu"], capsys)
    assert code == 0, err
    own_rmse = json.loads((run / "eval.json").read_text())["reconstruction"]["rmse_k"]["mean"]
    code, _, err = cli(["evaluate", run, "--device", "cpu", "--data", data, "--set", "data.units=degC"], capsys)
    assert code == 0, err
    result = json.loads((run / "eval.json").read_text())
    assert result["data"]["fields"] == {"units": "degC"}
    assert result["reconstruction"]["rmse_k"]["mean"] == pytest.approx(own_rmse, rel=1e-5)
    # without data.units the same file is read as kelvin (--data replaces the run's data, settings and all)
    code, _, err = cli(["evaluate", run, "--device", "cpu", "--data", data], capsys)
    assert code == 0, err
    assert json.loads((run / "eval.json").read_text())["reconstruction"]["rmse_k"]["mean"] > own_rmse + 100
    code, _, err = cli(["evaluate", run, "--device", "cpu", "--set", "data.units=degC"], capsys)
    one_line_error(code, err, "apply to the data given with --data")
    code, _, err = cli(["evaluate", run, "--device", "cpu", "--data", data, "--set", "data.unitz=degC"], capsys)
    one_line_error(code, err, "unitz")
    code, _, err = cli(["inpaint", run, "--device", "cpu", "--count", "1", "--n", "1", "--ddim-steps", "2",
                        "--seed", "0", "--out", tmp_path / "inp", "--data", data, "--set", "data.units=degC"], capsys)
    assert code == 0, err

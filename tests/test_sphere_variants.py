"""Odd-but-legal ERA5/sphere inputs as users bring them: the new CDS layout (valid_time, number,
expver, ERA5 beside ERA5T), longitude/latitude conventions, packed and half-precision data,
units spellings, zarr v2/v3 and folders of stores, folders of monthly files out of order or
overlapping, dimensions named by other tools (NCL, y/x), undecodable times, a folder mixing
.npz with NetCDF; metric and output names that follow the domain's units; nothing is written
into the data folder."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

import inrkit
from inrkit.data import open_dataset
from inrkit.errors import DataError
from inrkit_modalities.sphere.units import metric_suffix, rmse_name

from conftest import cli, needs_grib, one_line_error

pytestmark = pytest.mark.filterwarnings("ignore:Consolidated metadata:UserWarning")

LAT = np.linspace(90, -90, 9)
LON = np.arange(16) * 22.5


def domain(**kw):
    return inrkit.build("domains", "sphere", **{"n_lat": 9, "n_lon": 16, **kw})


def kelvin(lat, lon, t=0):
    la, lo = np.meshgrid(np.deg2rad(np.asarray(lat, float)), np.deg2rad(np.asarray(lon, float)), indexing="ij")
    return 250 + 45 * np.cos(la) ** 2 + 3 * np.sin(lo + t)


REF = np.stack([kelvin(LAT, LON, t) for t in range(3)])  # on the domain's own 9 x 16 grid


def era5(n=3, lat=LAT, lon=LON, name="t2m", time="time", units="K", t0="2020-01-01", offset=0.0):
    data = (np.stack([kelvin(lat, lon, t) for t in range(n)]) + offset).astype(np.float32)
    return xr.Dataset({name: ((time, "latitude", "longitude"), data, {} if units is None else {"units": units})},
                      coords={time: pd.date_range(t0, periods=n), "latitude": lat, "longitude": lon})


def physical(d, ds) -> np.ndarray:
    return d.physical(ds.items[:, 0]).numpy()


def tree(root):
    """Every path below ``root`` with its size and modification time: what reading must leave alone."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


# -- a folder of .npz beside NetCDF ----------------------------------------------------------------
def _mixed(folder):
    folder.mkdir()
    era5().to_netcdf(folder / "a.nc", engine="h5netcdf")
    era5(n=2, t0="2021-01-01").to_netcdf(folder / "b.nc", engine="h5netcdf")
    np.savez(folder / "c.npz", latitude=LAT, longitude=LON, temperature=REF[0])


def test_a_folder_mixing_npz_and_netcdf_names_both_kinds_and_the_choice(tmp_path, capsys):
    folder = tmp_path / "mixed"
    _mixed(folder)
    d = domain()
    with pytest.raises(DataError, match=r"1 \.npz file\(s\).*2 NetCDF/GRIB.*data\.name=era5_npz.*data\.name=era5_xarray"):
        open_dataset(d, folder, split="all")
    assert len(open_dataset(d, folder, split="all", name="era5_xarray")) == 5
    assert len(open_dataset(d, folder, split="all", name="era5_npz")) == 1
    code, _, err = cli(["data", "show", "--modality", "sphere", "--data", folder, "--set", "domain.n_lat=9",
                        "--set", "domain.n_lon=16", "--out", tmp_path / "show.png"], capsys)
    one_line_error(code, err, "mixed", ".npz", "NetCDF", "data.name=era5_npz")
    code, out, err = cli(["data", "show", "--modality", "sphere", "--data", folder, "--set", "data.name=era5_npz",
                          "--set", "domain.n_lat=9", "--set", "domain.n_lon=16", "--out", tmp_path / "show.png"], capsys)
    assert code == 0, err
    assert "era5_npz" in out


def test_hidden_folders_do_not_make_a_folder_mixed(tmp_path):
    folder = tmp_path / "gasp"
    folder.mkdir()
    np.savez(folder / "a.npz", latitude=LAT, longitude=LON, temperature=REF[0])
    (folder / ".cache").mkdir()
    era5().to_netcdf(folder / ".cache" / "x.nc", engine="h5netcdf")
    assert domain().dataset_for(folder) == "era5_npz"


# -- metric and output names follow the domain's units ---------------------------------------------
@pytest.mark.parametrize("units,name", [("K", "rmse_k"), ("kelvin", "rmse_k"), ("degC", "rmse_k"),
                                        ("m/s", "rmse_m_per_s"), ("m s**-1", "rmse_m_per_s"), ("mm", "rmse_mm"),
                                        ("m2 s-2", "rmse_m2_per_s2"), ("kg m-2 s-1", "rmse_kg_per_m2_s"),
                                        ("1", "rmse_dimensionless"), ("%", "rmse_percent")])
def test_rmse_is_named_for_the_domain_units(units, name):
    assert rmse_name(units) == name
    d = domain(variable_units=units, t_min=-40, t_max=80)
    x = torch.zeros(2, 1, 9, 16)
    m = d.metrics(x + 0.1, x)
    assert {name, name + "_weighted"} <= set(m) and not ({"rmse_k", "rmse_k_weighted"} - {name, name + "_weighted"}) & set(m)
    assert torch.allclose(m[name], torch.full((2,), 0.05 * 120.0))
    assert d.describe()["metrics"][name] == f"RMSE in {units}"


def test_metric_suffixes_are_name_characters():
    for units in ("m/s", "kg/m^2/s", "m of water equivalent", "W m-2", "(0 - 1)", "", "Pa"):
        s = metric_suffix(units)
        assert s and all(c.isalnum() or c == "_" for c in s), (units, s)


def test_wind_outputs_are_not_labelled_temperature(tmp_path):
    d = domain(variable_units="m/s", t_min=-40, t_max=80)
    d.write_netcdf(torch.zeros(1, 1, 9, 16), tmp_path / "w.nc")
    with xr.open_dataset(tmp_path / "w.nc", engine="h5netcdf") as ds:
        assert list(ds.data_vars) == ["field"]
        assert ds["field"].attrs["units"] == "m/s" and "standard_name" not in ds["field"].attrs
        assert np.allclose(ds["field"].values, 20.0)  # model 0 = the middle of [-40, 80]
    k = domain()
    k.write_netcdf(torch.zeros(1, 1, 9, 16), tmp_path / "t.nc")
    with xr.open_dataset(tmp_path / "t.nc", engine="h5netcdf") as ds:
        assert ds["2m_temperature"].attrs["standard_name"] == "air_temperature"


def test_training_on_winds_reports_rmse_in_m_per_s(tmp_path, capsys):
    data = tmp_path / "u10.nc"
    era5(n=6, name="u10", units="m s**-1", offset=-260.0).to_netcdf(data, engine="h5netcdf")
    run = tmp_path / "run"
    code, _, err = cli(["train", "ldmi", "--modality", "sphere", "--preset", "tiny", "--data", data, "--out", run,
                        "--device", "cpu", "--set", "data.variable=u10", "--set", "model.domain.variable_units=m/s",
                        "--set", "model.domain.t_min=-40", "--set", "model.domain.t_max=80",
                        "--set", "model.domain.n_lat=9", "--set", "model.domain.n_lon=16",
                        "--set", "train.vae.steps=2", "--set", "train.prior.steps=2", "--set", "train.progress=false",
                        "--set", "train.tensorboard=false"], capsys)
    assert code == 0, err
    code, _, err = cli(["evaluate", run, "--device", "cpu"], capsys)
    assert code == 0, err
    rec = json.loads((run / "eval.json").read_text())["reconstruction"]
    assert "rmse_m_per_s" in rec and "rmse_k" not in rec
    assert "rmse_m_per_s" in json.loads((run / "run.json").read_text())["domain"]["metrics"]


# -- the CDS layout: valid_time, number, expver -----------------------------------------------------
def test_new_cds_layout_valid_time_number_and_expver_coordinates(tmp_path):
    ds = era5(time="valid_time").assign_coords(number=0, expver=("valid_time", ["0001"] * 3))
    ds.to_netcdf(tmp_path / "cds.nc", engine="h5netcdf")
    ds.expand_dims(number=[0]).to_netcdf(tmp_path / "cds_number.nc", engine="h5netcdf")
    d = domain()
    for name in ("cds.nc", "cds_number.nc"):
        got = open_dataset(d, tmp_path / name, split="all")
        assert np.allclose(physical(d, got), REF, atol=1e-3)
        assert got.item_labels([0])[0].startswith("2020-01-01")
        assert len(open_dataset(d, tmp_path / name, split="all", time=["2020-01-02", "2020-01-03"])) == 2


def test_one_field_with_a_scalar_valid_time_keeps_its_date(tmp_path):
    era5(time="valid_time").isel(valid_time=1).to_netcdf(tmp_path / "one.nc", engine="h5netcdf")
    got = open_dataset(domain(), tmp_path / "one.nc", split="all")
    assert len(got) == 1 and got.item_labels([0])[0].startswith("2020-01-02")


def _era5_and_era5t(path, clash=False):
    """Old CDS NetCDF reaching the last months: expver 1 (ERA5) and 5 (ERA5T), NaN where the other holds the step."""
    one = era5(time="valid_time")
    both = xr.concat([one, one], dim=pd.Index(["0001", "0005"], name="expver")).transpose("valid_time", "expver", ...)
    v = both["t2m"].values.copy()
    v[2, 0] = np.nan   # the last step is ERA5T only
    v[:2, 1] = np.nan  # the others ERA5 only
    if clash:
        v[1, 1] = v[1, 0] + 1.0
    both["t2m"].values[:] = v
    both.to_netcdf(path, engine="h5netcdf")


def test_era5_beside_era5t_expver_is_merged_into_one_series(tmp_path):
    _era5_and_era5t(tmp_path / "mix.nc")
    d = domain()
    got = open_dataset(d, tmp_path / "mix.nc", split="all")
    assert len(got) == 3 and np.allclose(physical(d, got), REF, atol=1e-3)
    one = open_dataset(d, tmp_path / "mix.nc", split="all", select={"expver": "0001"}, time=[0, 2])
    assert len(one) == 2
    _era5_and_era5t(tmp_path / "clash.nc", clash=True)
    with pytest.raises(DataError, match=r"expver.*different values.*data\.select=\{expver: \"0001\"\}"):
        open_dataset(d, tmp_path / "clash.nc", split="all")


def test_ensemble_members_ask_for_one(tmp_path):
    one = era5(time="valid_time")
    xr.concat([one, one + 1], dim=pd.Index([0, 1], name="number")).to_netcdf(tmp_path / "ens.nc", engine="h5netcdf")
    d = domain()
    with pytest.raises(DataError, match=r"number \(2\).*data\.select=\{number: 0\}"):
        open_dataset(d, tmp_path / "ens.nc", split="all")
    got = open_dataset(d, tmp_path / "ens.nc", split="all", select={"number": 1})
    assert np.allclose(physical(d, got), REF + 1, atol=1e-3)


# -- grids: longitude and latitude conventions, dimension order, a duplicated column ----------------
def _lon_pm180():
    lon = np.mod(LON + 180, 360) - 180
    return np.sort(lon)


@pytest.mark.parametrize("variant", ["pm180", "ascending_lat", "lon_lat_order", "time_last", "dup_360", "dup_pm180"])
def test_grid_conventions_give_the_same_fields(tmp_path, variant):
    ds = {
        "pm180": lambda: era5(lon=_lon_pm180()),
        "ascending_lat": lambda: era5(lat=LAT[::-1]),
        "lon_lat_order": lambda: era5().transpose("time", "longitude", "latitude"),
        "time_last": lambda: era5().transpose("longitude", "latitude", "time"),
        "dup_360": lambda: era5(lon=np.arange(17) * 22.5),         # 0 .. 360, both ends
        "dup_pm180": lambda: era5(lon=np.arange(17) * 22.5 - 180),  # -180 .. 180, both ends
    }[variant]()
    ds.to_netcdf(tmp_path / "f.nc", engine="h5netcdf")
    d = domain()
    assert np.allclose(physical(d, open_dataset(d, tmp_path / "f.nc", split="all")), REF, atol=1e-3)


def test_dims_named_by_other_tools_are_found_by_their_coordinates(tmp_path):
    ncl = era5().rename({"latitude": "g0_lat_0", "longitude": "g0_lon_1", "time": "initial_time0_hours"})
    ncl["g0_lat_0"].attrs = {"units": "degrees_north", "long_name": "latitude"}
    ncl["g0_lon_1"].attrs = {"units": "degrees_east", "long_name": "longitude"}
    ncl.to_netcdf(tmp_path / "ncl.nc", engine="h5netcdf")
    yx = era5().rename({"latitude": "y", "longitude": "x"}).assign_coords(latitude=("y", LAT), longitude=("x", LON))
    yx.to_netcdf(tmp_path / "yx.nc", engine="h5netcdf")
    d = domain()
    for name in ("ncl.nc", "yx.nc"):
        got = open_dataset(d, tmp_path / name, split="all")
        assert np.allclose(physical(d, got), REF, atol=1e-3) and got.item_labels([2])[0].startswith("2020-01-03")
    plain = era5().rename({"latitude": "a", "longitude": "b"})
    plain.to_netcdf(tmp_path / "plain.nc", engine="h5netcdf")
    with pytest.raises(DataError, match=r"expected latitude/lat and longitude/lon.*degrees_north"):
        open_dataset(d, tmp_path / "plain.nc", split="all")


def test_missing_coordinate_values_are_named(tmp_path):
    lat = LAT.copy()
    lat[3] = np.nan
    ds = era5()
    ds = ds.assign_coords(latitude=lat)
    ds.to_netcdf(tmp_path / "f.nc", engine="h5netcdf")
    with pytest.raises(DataError, match=r"1 of its 9 latitudes are missing"):
        open_dataset(domain(), tmp_path / "f.nc", split="all")


@pytest.mark.parametrize("dim", ["level", "pressure_level"])
def test_a_level_dimension_of_size_one(tmp_path, dim):
    era5().expand_dims({dim: [850.0]}).transpose("time", dim, ...).to_netcdf(tmp_path / "f.nc", engine="h5netcdf")
    d = domain()
    assert np.allclose(physical(d, open_dataset(d, tmp_path / "f.nc", split="all")), REF, atol=1e-3)


# -- encodings: packed int16, half precision, units spellings -------------------------------------
@pytest.mark.parametrize("engine", ["h5netcdf", "scipy"])
def test_int16_packed_data_is_unpacked(tmp_path, engine):
    ds = era5()
    ds["t2m"].encoding = {"dtype": "int16", "scale_factor": 0.01, "add_offset": 270.0, "_FillValue": -32767}
    ds.to_netcdf(tmp_path / "p.nc", engine=engine)
    with xr.open_dataset(tmp_path / "p.nc", engine=engine, mask_and_scale=False) as raw:
        assert raw["t2m"].dtype == np.int16
    d = domain()
    assert np.allclose(physical(d, open_dataset(d, tmp_path / "p.nc", split="all")), REF, atol=0.006)


def test_a_fill_value_in_packed_data_is_missing_data(tmp_path):
    ds = era5()
    v = ds["t2m"].values.copy()
    v[1, 2, 3] = np.nan
    ds["t2m"].values[:] = v
    ds["t2m"].encoding = {"dtype": "int16", "scale_factor": 0.01, "add_offset": 270.0, "_FillValue": -32767}
    ds.to_netcdf(tmp_path / "p.nc", engine="h5netcdf")
    with pytest.raises(DataError, match=r"p\.nc: variable 't2m' holds 1 non-finite value"):
        open_dataset(domain(), tmp_path / "p.nc", split="all")


@pytest.mark.parametrize("dtype,tol", [(np.float16, 0.13), (np.float32, 1e-3), (np.float64, 1e-3)])
def test_half_single_and_double_precision(tmp_path, dtype, tol):
    ds = era5()
    ds["t2m"] = ds["t2m"].astype(dtype)
    ds.to_zarr(tmp_path / "f.zarr", zarr_format=2)
    d = domain()
    assert np.allclose(physical(d, open_dataset(d, tmp_path / "f.zarr", split="all")), REF, atol=tol)


@pytest.mark.parametrize("units", ["K", "kelvin", "Kelvin", "degK", "degC", "deg_C", "Celsius", "degrees_Celsius",
                                   "degree_Celsius", "°C", "C"])
def test_temperature_units_spellings(tmp_path, units):
    celsius = units not in ("K", "kelvin", "Kelvin", "degK")
    era5(units=units, offset=-273.15 if celsius else 0.0).to_netcdf(tmp_path / "f.nc", engine="h5netcdf")
    d = domain()
    got = open_dataset(d, tmp_path / "f.nc", split="all")
    assert np.allclose(physical(d, got), REF, atol=1e-3) and got.meta["file_units"] == units


# -- zarr: v2 and v3, a folder of stores -----------------------------------------------------------
@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize("consolidated", [True, False])
def test_zarr_v2_and_v3_stores_and_a_folder_of_them(tmp_path, fmt, consolidated):
    d = domain()
    era5().to_zarr(tmp_path / "store", zarr_format=fmt, consolidated=consolidated)  # no .zarr suffix
    assert np.allclose(physical(d, open_dataset(d, tmp_path / "store", split="all")), REF, atol=1e-3)
    folder = tmp_path / "stores"
    folder.mkdir()
    full = era5()
    full.isel(time=[2]).to_zarr(folder / "b.zarr", zarr_format=fmt, consolidated=consolidated)
    full.isel(time=[0, 1]).to_zarr(folder / "a.zarr", zarr_format=fmt, consolidated=consolidated)
    assert d.dataset_for(folder) == "era5_xarray"
    got = open_dataset(d, folder, split="all")
    assert got.meta["n_files"] == 2 and np.allclose(physical(d, got), REF, atol=1e-3)


# -- calendars and times ----------------------------------------------------------------------------
@pytest.mark.parametrize("calendar", ["noleap", "360_day"])
def test_a_folder_of_monthly_files_on_a_model_calendar_follows_time(tmp_path, calendar):
    for k, name in enumerate(["m2.nc", "m1.nc", "m0.nc"]):  # names against time order
        ds = era5(n=1).isel(time=[0]) + 0 * k
        ds["t2m"].values[:] = REF[k][None]
        ds.assign_coords(time=("time", [30.0 * k], {"units": "days since 2001-01-01", "calendar": calendar})).to_netcdf(
            tmp_path / name, engine="h5netcdf")
    d = domain()
    got = open_dataset(d, tmp_path, split="all")
    assert np.allclose(physical(d, got), REF, atol=1e-3)
    assert got.item_labels([0])[0].startswith("2001-01-01")


def test_files_of_different_calendars_are_one_error(tmp_path):
    era5(n=2).to_netcdf(tmp_path / "a.nc", engine="h5netcdf")
    era5(n=2).assign_coords(time=("time", [40.0, 41.0], {"units": "days since 2020-01-01", "calendar": "noleap"})).to_netcdf(
        tmp_path / "b.nc", engine="h5netcdf")
    with pytest.raises(DataError, match=r"cannot be put in one order.*calendars"):
        open_dataset(domain(), tmp_path, split="all")


def test_times_out_of_order_within_and_across_files_are_sorted(tmp_path):
    full = era5(n=5)
    full.isel(time=[4, 0, 2]).to_netcdf(tmp_path / "a.nc", engine="h5netcdf")
    full.isel(time=[3, 1]).to_netcdf(tmp_path / "b.nc", engine="h5netcdf")
    d = domain()
    got = open_dataset(d, tmp_path, split="all")
    labels = got.item_labels(range(5))
    assert labels == sorted(labels) and labels[0].startswith("2020-01-01") and labels[-1].startswith("2020-01-05")
    assert np.allclose(physical(d, got), np.stack([kelvin(LAT, LON, t) for t in range(5)]), atol=1e-3)
    assert got.meta["time_range"][0].startswith("2020-01-01") and got.meta["time_range"][1].startswith("2020-01-05")
    # the held-out split follows the sorted order too: train + val are every step once
    tr, va = (open_dataset(d, tmp_path, split=s, val_fraction=0.4) for s in ("train", "val"))
    assert sorted(tr.item_labels(range(len(tr))) + va.item_labels(range(len(va)))) == labels


def test_overlapping_or_repeated_time_steps_are_one_error(tmp_path, capsys):
    full = era5(n=5)
    folder = tmp_path / "months"
    folder.mkdir()
    full.isel(time=slice(0, 3)).to_netcdf(folder / "jan.nc", engine="h5netcdf")
    full.isel(time=slice(2, 5)).to_netcdf(folder / "feb.nc", engine="h5netcdf")
    d = domain()
    with pytest.raises(DataError, match=r"time 2020-01-03 is in both feb\.nc and jan\.nc \(1 duplicated"):
        open_dataset(d, folder, split="all")
    code, _, err = cli(["data", "show", "--modality", "sphere", "--data", folder, "--out", tmp_path / "s.png"], capsys)
    one_line_error(code, err, "2020-01-03", "feb.nc", "jan.nc")
    # a range that leaves the overlap out reads
    assert len(open_dataset(d, folder, split="all", time=["2020-01-04", "2020-01-05"])) == 2
    full.isel(time=[0, 1, 1]).to_netcdf(tmp_path / "rep.nc", engine="h5netcdf")
    with pytest.raises(DataError, match=r"rep\.nc: time 2020-01-02 appears twice"):
        open_dataset(d, tmp_path / "rep.nc", split="all")


def test_undecodable_time_units_read_by_position(tmp_path):
    ds = era5().assign_coords(time=("time", [0, 1, 2], {"units": "months since 2000-01-01"}))
    ds.to_netcdf(tmp_path / "m.nc", engine="h5netcdf")
    d = domain()
    got = open_dataset(d, tmp_path / "m.nc", split="all")
    assert np.allclose(physical(d, got), REF, atol=1e-3)
    assert "months since 2000-01-01" in got.meta["time_note"] and "by position" in got.meta["conversion"]
    assert got.item_labels([1]) == ["time step 1"]
    assert len(open_dataset(d, tmp_path / "m.nc", split="all", time=[1, 3])) == 2
    with pytest.raises(DataError, match=r"cannot be decoded.*data\.time=\[0, 12\]"):
        open_dataset(d, tmp_path / "m.nc", split="all", time=["2000-01-01", "2000-02-01"])


def test_the_conversion_note_names_the_regridding(tmp_path):
    era5().to_netcdf(tmp_path / "f.nc", engine="h5netcdf")
    d = domain(n_lat=5, n_lon=8)
    assert "(conservative)" in open_dataset(d, tmp_path / "f.nc", split="all", regrid="conservative").meta["conversion"]
    assert "(bilinear" in open_dataset(d, tmp_path / "f.nc", split="all").meta["conversion"]


def test_folders_inrkit_wrote_inside_the_data_folder_are_not_data(tmp_path, capsys):
    data = tmp_path / "era5"
    data.mkdir()
    era5().to_netcdf(data / "a.nc", engine="h5netcdf")
    code, _, err = cli(["data", "prepare", "--modality", "sphere", "--data", data / "a.nc", "--out", data / "cache.zarr",
                        "--set", "domain.n_lat=9", "--set", "domain.n_lon=16"], capsys)
    assert code == 0, err
    run = data / "runs" / "r1"  # a run directory made here because it was the working directory
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("schema_version: 1\n")
    era5(t0="2030-01-01").to_netcdf(run / "samples.nc", engine="h5netcdf")
    era5(t0="2031-01-01").to_netcdf(data / ".hidden.nc", engine="h5netcdf")
    d = domain()
    assert d.dataset_for(data) == "era5_xarray"
    got = open_dataset(d, data, split="all")
    assert got.meta["n_files"] == 1 and len(got) == 3


# -- nothing is written beside the user's data ------------------------------------------------------
def test_reading_writes_nothing_into_the_data_folder(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    era5().to_netcdf(data / "a.nc", engine="h5netcdf")
    era5(t0="2021-01-01").to_netcdf(data / "b.nc", engine="scipy")
    era5(t0="2022-01-01").to_zarr(data / "c.zarr", zarr_format=2, consolidated=False)
    era5(t0="2023-01-01").to_zarr(data / "d.zarr", zarr_format=3)
    gasp = tmp_path / "gasp"
    gasp.mkdir()
    np.savez(gasp / "a.npz", latitude=LAT, longitude=LON, temperature=REF[0])
    before = {p: tree(p) for p in (data, gasp)}
    d = domain()
    assert len(open_dataset(d, data, split="all")) == 12
    assert len(open_dataset(d, data / "c.zarr", split="all")) == 3
    assert len(open_dataset(d, gasp, split="all")) == 1
    code, _, err = cli(["data", "show", "--modality", "sphere", "--data", data, "--out", tmp_path / "show.png"], capsys)
    assert code == 0, err
    assert {p: tree(p) for p in (data, gasp)} == before


# -- GRIB: forecast steps and ensemble members ------------------------------------------------------
def _grib(path, messages):
    """2 m temperature (paramId 167) on a global 5° grid, one GRIB 2 message per (extra keys, field)."""
    import eccodes

    with open(path, "wb") as fh:
        for extra, field in messages:
            h = eccodes.codes_grib_new_from_samples("regular_ll_sfc_grib2")
            for key, value in [("Ni", 72), ("Nj", 37), ("latitudeOfFirstGridPointInDegrees", 90.0),
                               ("longitudeOfFirstGridPointInDegrees", 0.0), ("latitudeOfLastGridPointInDegrees", -90.0),
                               ("longitudeOfLastGridPointInDegrees", 355.0), ("iDirectionIncrementInDegrees", 5.0),
                               ("jDirectionIncrementInDegrees", 5.0), ("paramId", 167), ("dataDate", 20200101),
                               ("dataTime", 0), *extra]:
                eccodes.codes_set(h, key, value)
            eccodes.codes_set_values(h, field.ravel())
            eccodes.codes_write(h, fh)
            eccodes.codes_release(h)


@needs_grib
def test_grib_forecast_steps_and_members_are_chosen_as_the_error_says(tmp_path):
    lat, lon = np.linspace(90, -90, 37), np.arange(0.0, 360.0, 5.0)
    _grib(tmp_path / "steps.grib", [([("stepRange", s)], kelvin(lat, lon) + s) for s in (1, 6)])
    _grib(tmp_path / "ens.grib", [([("typeOfProcessedData", 5), ("productDefinitionTemplateNumber", 1),
                                    ("perturbationNumber", n), ("numberOfForecastsInEnsemble", 10)], kelvin(lat, lon) + n)
                                  for n in (0, 1)])
    d = inrkit.build("domains", "sphere", n_lat=37, n_lon=72)
    with pytest.raises(DataError, match=r"step \(2\).*data\.select=\{step: \"1h\"\}"):
        open_dataset(d, tmp_path / "steps.grib", split="all")
    got = open_dataset(d, tmp_path / "steps.grib", split="all", select={"step": "6h"})
    assert np.allclose(physical(d, got)[0], kelvin(lat, lon) + 6, atol=0.01)
    got = open_dataset(d, tmp_path / "ens.grib", split="all", select={"number": 1})
    assert np.allclose(physical(d, got)[0], kelvin(lat, lon) + 1, atol=0.01)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ens.grib", "steps.grib"]

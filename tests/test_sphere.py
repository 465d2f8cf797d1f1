"""The sphere (ERA5) modality: grid, latitude weights, metrics, regridding, every data layout, outputs."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

import inrkit
from inrkit.data import open_dataset
from inrkit.errors import DataError
from inrkit_modalities.sphere.metrics import latitude_weights
from inrkit_modalities.sphere.regrid import Regridder

N_LAT, N_LON = 7, 12  # 30 degree steps, poles included


def sphere(**kw):
    return inrkit.build("domains", "sphere", **{"n_lat": N_LAT, "n_lon": N_LON, **kw})


def field_k(lat, lon, t=0):
    """A smooth test field in kelvin, defined for any latitude/longitude (degrees)."""
    lat, lon = np.deg2rad(np.asarray(lat))[:, None], np.deg2rad(np.asarray(lon))[None, :]
    return 250.0 + 40.0 * np.cos(lat) ** 2 + 5.0 * np.sin(lon + 0.3 * t) * np.cos(lat) + t


def expected_items(d, times):
    k = np.stack([field_k(d.latitudes(), d.longitudes(), t) for t in times])
    return torch.from_numpy(d.to_model(k)[:, None]).float()


def test_registered_through_the_plugin():
    assert {"image", "sphere"} <= set(inrkit.get_registry("domains").names())
    assert {"era5_xarray", "era5_npz", "synthetic"} <= set(inrkit.get_registry("datasets").names())


# -- grid ------------------------------------------------------------------------------------
def test_grid_layouts_and_resolution():
    d = sphere()
    assert d.grid_shape == (7, 12) and d.resolve_resolution(14) == (14, 24)  # R keeps the grid's aspect
    assert d.resolve_resolution((121, 240)) == (121, 240) and d.resolve_resolution([9]) == (9, 15)
    assert inrkit.build("domains", "sphere").resolve_resolution(46) == (46, 90)  # not 46 x 92
    assert np.allclose(d.latitudes(), [90, 60, 30, 0, -30, -60, -90])
    assert np.allclose(d.longitudes()[:3], [0, 30, 60]) and d.longitudes()[-1] == 330
    g = d.grid()
    assert g.shape == (84, 3) and torch.allclose(g.norm(dim=1), torch.ones(84), atol=1e-6)
    assert torch.allclose(g[0], torch.tensor([0.0, 0.0, 1.0]), atol=1e-6)  # row 0 is the north pole
    assert torch.allclose(g[12 * 3 + 3], torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)  # equator, lon 90
    assert d.grid((92, 184)).shape == (92 * 184, 3)
    c = sphere(layout="centres", n_lat=4, n_lon=8)
    assert np.allclose(c.latitudes(), [67.5, 22.5, -22.5, -67.5])
    # to_grid at a finer resolution: H rows and W longitudes
    vals = torch.randn(2, 10 * 20, 1)
    assert d.to_grid(vals, (10, 20)).shape == (2, 1, 10, 20)


def test_latitude_weights_from_cell_areas():
    # edges -90, -45, 45, 90: areas 1 - sin 45, 2 sin 45, 1 - sin 45, normalised to mean 1
    s = math.sin(math.pi / 4)
    area = np.array([1 - s, 2 * s, 1 - s])
    assert np.allclose(latitude_weights([90, 0, -90]), area / area.mean())
    w = latitude_weights(np.linspace(90, -90, 46))
    assert w.mean() == pytest.approx(1.0) and np.allclose(w, w[::-1])
    assert w[0] < w[1] < w[23]  # poles weigh least
    # order does not matter: ascending input gives the same weights per latitude
    lat = sphere(layout="centres", n_lat=6).latitudes()
    assert np.allclose(latitude_weights(lat)[::-1], latitude_weights(lat[::-1]))


# -- metrics ----------------------------------------------------------------------------------
def test_metrics_constant_offset_hand_computed():
    d = sphere()
    target = torch.zeros(2, 1, N_LAT, N_LON)
    pred = target.clone()
    pred[0] += 0.2  # model space 0.2 → 0.1 on [0, 1] → MSE 0.01
    pred[1] -= 0.02
    m = d.metrics(pred, target)
    span = 320.93 - 202.66
    assert torch.allclose(m["psnr_unit"], torch.tensor([20.0, 40.0]), atol=1e-4)
    assert torch.allclose(m["psnr_unit"] - m["psnr_sym"], torch.full((2,), 20 * math.log10(2)), atol=1e-4)
    assert torch.allclose(m["rmse_k"], torch.tensor([0.1 * span, 0.01 * span]), rtol=1e-5)
    assert torch.allclose(m["mse"], torch.tensor([0.04, 0.0004]), rtol=1e-5)
    # a uniform error is the same weighted or not
    for name in ("psnr_unit", "psnr_sym", "rmse_k"):
        assert torch.allclose(m[name + "_weighted"], m[name], rtol=1e-5)


def test_weighted_metrics_discount_polar_errors():
    d = sphere()
    target = torch.zeros(1, 1, N_LAT, N_LON)
    polar, tropical = target.clone(), target.clone()
    polar[..., 0, :] = 0.5
    tropical[..., 3, :] = 0.5
    mp, mt = d.metrics(polar, target), d.metrics(tropical, target)
    assert mp["rmse_k"] == pytest.approx(mt["rmse_k"].item())  # unweighted cannot tell them apart
    assert mp["rmse_k_weighted"] < mp["rmse_k"] < mt["rmse_k_weighted"]
    w = torch.from_numpy(latitude_weights(d.latitudes()))
    expect = math.sqrt(w[0].item() * 0.25**2 / N_LAT) * (320.93 - 202.66)
    assert mp["rmse_k_weighted"].item() == pytest.approx(expect, rel=1e-5)


# -- regridding -------------------------------------------------------------------------------
def test_regrid_orders_wraps_and_interpolates():
    lat_src, lon_src = np.array([-30.0, 30.0]), np.array([-10.0, 10.0, 90.0, 180.0])  # -10 wraps to 350
    values = np.array([[1.0, 3.0, 5.0, 7.0], [2.0, 4.0, 6.0, 8.0]])
    r = Regridder(lat_src, lon_src, [30.0, 0.0, -60.0], [0.0, 355.0, 10.0])
    out = r(values)
    # lat 30 → row 2; lat 0 → mean of rows; lat -60 → clamped to -30; lon 0 halfway 350..10, lon 355 a quarter
    assert np.allclose(out[0], [3.0, 2.5, 4.0])
    assert np.allclose(out[1], [2.5, 2.0, 3.5])
    assert np.allclose(out[2], [2.0, 1.5, 3.0])
    same = Regridder(lat_src[::-1], lon_src, lat_src, np.mod(lon_src, 360))
    assert same.identity and np.array_equal(same(values[::-1]), values)


# -- datasets: xarray layouts -----------------------------------------------------------------
def _wb2_dataset(lat, lon, n_time=3, name="2m_temperature", units="K", t0=0, dims=("time", "latitude", "longitude")):
    times = np.arange(t0, t0 + n_time)
    data = np.stack([field_k(lat, lon, t) for t in times]).astype(np.float32)
    if units == "degC":
        data = data - 273.15
    ds = xr.Dataset(
        {name: (dims, data, {"units": units})},
        coords={dims[0]: pd.date_range("2020-01-01", periods=n_time, freq="D") + pd.Timedelta(days=int(t0)),
                dims[1]: lat, dims[2]: lon},
    )
    return ds


def test_netcdf_descending_lat_0_360(tmp_path):
    d = sphere()
    path = tmp_path / "era5.nc"
    _wb2_dataset(np.linspace(90, -90, N_LAT), np.arange(N_LON) * 30.0).to_netcdf(path, engine="h5netcdf")
    assert d.dataset_for(path) == "era5_xarray"
    ds = open_dataset(d, path, split="all")
    assert len(ds) == 3 and ds[0].shape == (1, N_LAT, N_LON) and ds[0].dtype == torch.float32
    assert torch.allclose(ds.items, expected_items(d, [0, 1, 2]), atol=1e-5)
    assert ds.meta["variable"] == "2m_temperature" and ds.meta["time_range"][0].startswith("2020-01-01")
    # time slices: by label (inclusive) and by position
    assert len(open_dataset(d, path, split="all", time=["2020-01-02", "2020-01-03"])) == 2
    sliced = open_dataset(d, path, split="all", time=[0, 1])
    assert len(sliced) == 1 and torch.allclose(sliced.items, expected_items(d, [0]), atol=1e-5)
    tr, va = open_dataset(d, path, split="train", val_fraction=0.34), open_dataset(d, path, split="val", val_fraction=0.34)
    assert (len(tr), len(va)) == (2, 1)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zarr_ascending_lat_pm180_lon_level_dim_and_alias(tmp_path, zarr_format):
    d = sphere()
    lat, lon = np.linspace(-90, 90, N_LAT), np.arange(-180, 180, 30.0)
    ds = _wb2_dataset(lat, lon, n_time=2, name="t2m", dims=("time", "lat", "lon"))
    ds = ds.expand_dims(level=[1000]).transpose("time", "level", "lon", "lat")  # odd dim order too
    store = tmp_path / f"era5_v{zarr_format}.zarr"
    ds.to_zarr(store, zarr_format=zarr_format, consolidated=False)
    assert d.dataset_for(store) == "era5_xarray"
    out = open_dataset(d, store, split="all")
    assert out.meta["variable"] == "t2m"
    assert torch.allclose(out.items, expected_items(d, [0, 1]), atol=1e-5)
    # an explicitly named variable that is not the default
    ds.rename({"t2m": "tas_custom"}).to_zarr(tmp_path / "custom.zarr", zarr_format=zarr_format, consolidated=False)
    got = open_dataset(d, tmp_path / "custom.zarr", split="all", variable="tas_custom")
    assert torch.allclose(got.items, out.items)


def test_regrids_other_grids_and_converts_celsius(tmp_path):
    d = sphere()
    # a finer, cell-centred 2-degree grid in Celsius, netCDF3 (scipy engine)
    lat = 89.0 - 2.0 * np.arange(90)
    lon = np.arange(0, 360, 2.0)
    path = tmp_path / "fine.nc"
    _wb2_dataset(lat, lon, n_time=1, units="degC").to_netcdf(path, engine="scipy")
    assert path.read_bytes()[:3] == b"CDF"
    got = open_dataset(d, path, split="all")
    err_k = (d.physical(got.items) - d.physical(expected_items(d, [0]))).abs().max().item()
    assert err_k < 0.5  # bilinear on a smooth field; poles take the nearest (89 degree) row


def test_folder_of_netcdf_files_concatenates_time(tmp_path):
    d = sphere()
    lat, lon = np.linspace(90, -90, N_LAT), np.arange(N_LON) * 30.0
    for k in range(2):  # names in reverse time order: items still follow time
        _wb2_dataset(lat, lon, n_time=2, t0=2 - 2 * k).to_netcdf(tmp_path / f"era5_{k}.nc", engine="h5netcdf")
    assert d.dataset_for(tmp_path) == "era5_xarray"
    ds = open_dataset(d, tmp_path, split="all")
    assert len(ds) == 4 and ds.meta["n_files"] == 2
    assert torch.allclose(ds.items, expected_items(d, [0, 1, 2, 3]), atol=1e-5)


def test_missing_time_dim_is_one_field(tmp_path):
    d = sphere()
    lat, lon = np.linspace(90, -90, N_LAT), np.arange(N_LON) * 30.0
    ds = _wb2_dataset(lat, lon, n_time=1).isel(time=0, drop=True)
    ds.to_netcdf(tmp_path / "one.nc", engine="h5netcdf")
    assert torch.allclose(open_dataset(d, tmp_path / "one.nc", split="all").items, expected_items(d, [0]), atol=1e-5)


# -- datasets: GASP .npz ----------------------------------------------------------------------
def test_npz_folder_gasp_layout(tmp_path):
    d = inrkit.build("domains", "sphere")  # 46 x 90, GASP's grid
    lat, lon = np.linspace(90, -90, 46), np.arange(90) * 4.0
    for t in range(3):
        np.savez(tmp_path / f"{t:04d}.npz", latitude=lat, longitude=lon, temperature=field_k(lat, lon, t))
    np.savez(tmp_path / "0003.npz", LATITUDE=lat, Longitude=lon, Temperature=field_k(lat, lon, 3))  # key case
    assert d.dataset_for(tmp_path) == "era5_npz"
    ds = open_dataset(d, tmp_path, split="all")
    assert len(ds) == 4 and ds[0].shape == (1, 46, 90)
    assert torch.allclose(ds.items, expected_items(d, range(4)), atol=1e-5)
    gasp = (field_k(lat, lon, 0) - 202.66) / (320.93 - 202.66)  # GASP's [0, 1] scaling
    assert torch.allclose((ds.items[0, 0] + 1) / 2, torch.from_numpy(gasp).float(), atol=1e-6)
    # a different grid in the folder is regridded into the domain's
    small = sphere()
    assert open_dataset(small, tmp_path, split="all").items.shape == (4, 1, N_LAT, N_LON)


# -- bad inputs -------------------------------------------------------------------------------
def test_bad_inputs_name_file_and_problem(tmp_path):
    d = sphere()
    with pytest.raises(DataError, match="does not exist"):
        open_dataset(d, tmp_path / "nope.nc")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: no ERA5 data found"):
        open_dataset(d, tmp_path / "empty")
    lat, lon = np.linspace(90, -90, N_LAT), np.arange(N_LON) * 30.0
    other = tmp_path / "other.nc"
    _wb2_dataset(lat, lon, name="geopotential", units="m").to_netcdf(other, engine="h5netcdf")
    with pytest.raises(DataError, match=r"other\.nc: variable '2m_temperature' not found.*variables present: geopotential"):
        open_dataset(d, other)
    with pytest.raises(DataError, match=r"other\.nc: variable 'z500' not found"):
        open_dataset(d, other, variable="z500")
    with pytest.raises(DataError, match=r"units 'm' cannot be converted"):
        open_dataset(d, other, variable="geopotential")
    holes = _wb2_dataset(lat, lon)
    holes["2m_temperature"][1, 2, 3:5] = np.nan
    holes.to_netcdf(tmp_path / "holes.nc", engine="h5netcdf")
    with pytest.raises(DataError, match=r"holes\.nc: variable '2m_temperature' holds 2 non-finite value\(s\) \(NaN"):
        open_dataset(d, tmp_path / "holes.nc", split="all")
    levels = _wb2_dataset(lat, lon).expand_dims(level=[500, 850])
    levels.to_netcdf(tmp_path / "levels.nc", engine="h5netcdf")
    with pytest.raises(DataError, match=r"levels\.nc.*extra dimension\(s\) level \(2\)"):
        open_dataset(d, tmp_path / "levels.nc")
    both = _wb2_dataset(lat, lon).expand_dims(level=[500, 850], number=[0, 1, 2])
    both.to_netcdf(tmp_path / "ensemble.nc", engine="h5netcdf")
    # every dimension to choose is in the suggestion, which pastes as it is
    with pytest.raises(DataError, match=r"level \(2\), number \(3\).*data.select=\{level: 500, number: 0\}'"):
        open_dataset(d, tmp_path / "ensemble.nc")
    assert len(open_dataset(d, tmp_path / "ensemble.nc", split="all", select={"number": 0, "level": 500})) == 3
    (tmp_path / "junk.nc").write_bytes(b"not a netcdf file at all")
    with pytest.raises(DataError, match=r"junk\.nc: not a NetCDF or GRIB file"):
        open_dataset(d, tmp_path / "junk.nc")

    npz = tmp_path / "npz"
    npz.mkdir()
    np.savez(npz / "a.npz", latitude=lat, longitude=lon, temperature=field_k(lat, lon))
    np.savez(npz / "b.npz", latitude=lat, longitude=lon, pressure=field_k(lat, lon))
    with pytest.raises(DataError, match=r"b\.npz: no 'temperature' array; arrays present: latitude, longitude, pressure"):
        open_dataset(d, npz, split="all")
    np.savez(npz / "b.npz", latitude=lat, longitude=lon, temperature=np.zeros((3, 3)))
    with pytest.raises(DataError, match=r"b\.npz: temperature has shape \(3, 3\)"):
        open_dataset(d, npz, split="all")
    bad_field = field_k(lat, lon)
    bad_field[0, 0] = np.nan
    np.savez(npz / "b.npz", latitude=lat, longitude=lon, temperature=bad_field)
    with pytest.raises(DataError, match=r"b\.npz: variable 'temperature' holds 1 non-finite value\(s\) \(NaN or inf\)"):
        open_dataset(d, npz, split="all")


# -- built-in synthetic -----------------------------------------------------------------------
def test_synthetic_fields_are_realistic_and_deterministic():
    d = inrkit.build("domains", "sphere")
    assert d.builtin_dataset == "synthetic"
    a = open_dataset(d, split="all", n_items=12)
    b = open_dataset(d, split="all", n_items=12)
    assert torch.equal(a.items, b.items) and a.items.shape == (12, 1, 46, 90)
    assert not torch.equal(a.items, open_dataset(d, split="all", n_items=12, seed=1).items)
    k = d.physical(a.items)[:, 0]
    assert 290 < k[:, 22:24].mean() < 305  # equator
    assert 235 < k[:, [0, -1]].mean() < 255  # poles
    assert 202.66 < k.min() and k.max() < 320.93
    # smooth: neighbouring cells differ by far less than the pole-to-equator contrast
    assert (k[:, :, 1:] - k[:, :, :-1]).abs().max() < 6
    # a split generates exactly its own items of the full set
    tr = open_dataset(d, split="train", n_items=12)
    from inrkit.data import split_indices

    assert torch.equal(tr.items, a.items[split_indices(12, "train", 0.1, 0)])


# -- outputs ----------------------------------------------------------------------------------
def test_render_png_and_netcdf_round_trip(tmp_path):
    d = sphere()
    grids = expected_items(d, [0, 1, 2])
    png, nc = d.render(grids, tmp_path, stem="samples", meta={"step": 3})
    assert png.name == "samples.png" and png.read_bytes()[:4] == b"\x89PNG"
    back = xr.open_dataset(nc, engine="h5netcdf")
    da = back["2m_temperature"]
    assert da.dims == ("sample", "latitude", "longitude") and da.attrs["units"] == "K"
    assert back["latitude"].attrs["units"] == "degrees_north" and back["longitude"].attrs["units"] == "degrees_east"
    assert np.allclose(back["latitude"], d.latitudes()) and np.allclose(back["longitude"], d.longitudes())
    assert np.allclose(da.values, d.physical(grids)[:, 0].numpy(), atol=1e-3)
    back.close()
    # a finer decode renders on its own grid, and reads back through the dataset path
    fine = torch.zeros(2, 1, 14, 28)
    _, nc2 = d.render(fine, tmp_path, stem="fine")
    with xr.open_dataset(nc2, engine="h5netcdf") as f:
        assert f["2m_temperature"].shape == (2, 14, 28) and f["latitude"].values[0] == 90
    store = d.write_zarr(grids, tmp_path / "samples.zarr")
    with xr.open_zarr(store) as z:
        assert np.allclose(z["2m_temperature"].values, d.physical(grids)[:, 0].numpy(), atol=1e-3)

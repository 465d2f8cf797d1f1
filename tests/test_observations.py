"""The domains' readers of a user's observation files (no training): formats, units, conventions, errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import inrkit
from inrkit.errors import ConfigError, DataError


def _domain(name, **cfg):
    return inrkit.build("domains", name, **cfg)


def test_sphere_csv_units_and_longitude_conventions(tmp_path):
    d = _domain("sphere", n_lat=12, n_lon=24)
    (tmp_path / "a.csv").write_text("# units: degC\nname,lat,lon,value\nx,10,-90,15\ny,-45.5,170,-3\n")
    (tmp_path / "b.csv").write_text("latitude;longitude;t2m (K)\n10;270;288.15\n-45.5;170;270.15\n")
    a, b = d.read_observations(tmp_path / "a.csv"), d.read_observations(tmp_path / "b.csv")
    assert torch.allclose(a.coords, b.coords, atol=1e-6) and torch.allclose(a.values, b.values, atol=1e-5)
    assert torch.allclose(a.values[0], torch.tensor([d.to_model(288.15)]).float(), atol=1e-6)
    assert torch.allclose(a.coords.norm(dim=1), torch.ones(2)) and a.units == "K"
    assert a.value_scale == pytest.approx(d.span / 2)
    (tmp_path / "c.csv").write_text("lat,lon,value\n10,270,15\n")
    c = d.read_observations(tmp_path / "c.csv", units="degC")  # --units when the file says nothing
    assert torch.allclose(c.values[0], a.values[0], atol=1e-5)
    with pytest.raises(DataError, match="file says units 'degC' but --units says 'K'"):
        d.read_observations(tmp_path / "a.csv", units="K")
    with pytest.raises(ConfigError, match="take no --sentinel"):
        d.read_observations(tmp_path / "a.csv", sentinel=-1)


def test_sphere_netcdf_gridded_with_gaps_and_scattered(tmp_path):
    import xarray as xr

    d = _domain("sphere", n_lat=12, n_lon=24)
    lat, lon = np.linspace(80, -80, 5), np.arange(-180, 180, 60.0)
    field = np.full((5, 6), 280.0)
    field[1, 2] = field[3, 4] = np.nan
    xr.DataArray(field, dims=("latitude", "longitude"), coords={"latitude": lat, "longitude": lon},
                 attrs={"units": "K"}).to_dataset(name="t2m").to_netcdf(tmp_path / "g.nc", engine="h5netcdf")
    g = d.read_observations(tmp_path / "g.nc")
    assert len(g) == 28 and g.meta["format"] == "gridded"
    with pytest.raises(DataError, match="missing values"):
        d.read_item(tmp_path / "g.nc")
    ds = xr.Dataset({"temperature": ("station", [1.0, 2.0, np.nan], {"units": "degC"}),
                     "lat": ("station", [0.0, 30.0, 60.0]), "lon": ("station", [0.0, 350.0, -10.0])})
    ds.to_netcdf(tmp_path / "s.nc", engine="h5netcdf")
    s = d.read_observations(tmp_path / "s.nc")
    assert len(s) == 2 and s.meta["format"] == "scattered"
    assert torch.allclose(s.values[:, 0], torch.tensor(d.to_model(np.array([274.15, 275.15]))).float(), atol=1e-5)
    # a whole field is regridded to the domain for reconstruct
    xr.DataArray(np.full((5, 6), 15.0), dims=("lat", "lon"), coords={"lat": lat, "lon": lon},
                 attrs={"units": "degC"}).to_dataset(name="t2m").to_netcdf(tmp_path / "w.nc", engine="h5netcdf")
    item = d.read_item(tmp_path / "w.nc")
    assert item.shape == (1, 12, 24) and torch.allclose(item, torch.full_like(item, float(d.to_model(288.15))), atol=1e-5)


def test_image_mask_cells_and_no_leak(tmp_path):
    d = _domain("image", resolution=4, channels=1)
    img = np.zeros((16, 16), np.uint8)
    img[:, 8:] = 255  # the hidden right half is white; it must not leak into observed cells
    mask = np.zeros((16, 16), np.uint8)
    mask[:, :6] = 255  # columns 0-5: cell column 0 fully, column 1 half observed
    Image.fromarray(img).save(tmp_path / "i.png")
    Image.fromarray(mask).save(tmp_path / "m.png")
    obs = d.read_observations(tmp_path / "i.png", mask=tmp_path / "m.png")
    assert len(obs) == 8 and torch.allclose(obs.values, torch.full((8, 1), -1.0))
    assert obs.preview.shape == (1, 4, 4) and obs.coords[:, 1].max() < 0
    with pytest.raises(DataError, match="need --mask"):
        d.read_observations(tmp_path / "i.png")
    assert d.read_item(tmp_path / "i.png").shape == (1, 4, 4)


def test_occupancy_grids_points_and_masks(tmp_path):
    d = _domain("occupancy", resolution=4)
    vol = np.zeros((6, 6, 6), np.float32)
    vol[1:3, 1:4, 2:5] = 1
    part = vol.copy()
    part[3:] = -1
    np.save(tmp_path / "p.npy", part)
    obs = d.read_observations(tmp_path / "p.npy")
    assert len(obs) == 108 and float(obs.values.sum()) == 18 and obs.coords.abs().max() < 1
    np.save(tmp_path / "m.npy", (part >= 0).astype(np.uint8))
    np.save(tmp_path / "raw.npy", vol)
    by_mask = d.read_observations(tmp_path / "raw.npy", mask=tmp_path / "m.npy")
    assert torch.equal(by_mask.coords, obs.coords) and torch.equal(by_mask.values, obs.values)
    torch.save(torch.from_numpy(np.where(part < 0, np.nan, part)), tmp_path / "nan.pt")
    assert len(d.read_observations(tmp_path / "nan.pt")) == 108
    (tmp_path / "pts.csv").write_text("x,y,z,occupied\n0.1,0.2,-0.3,1\n-0.9,0.9,0.0,0\n")
    pts = d.read_observations(tmp_path / "pts.csv")
    assert torch.allclose(pts.coords[0], torch.tensor([0.1, 0.2, -0.3])) and pts.values[:, 0].tolist() == [1.0, 0.0]
    np.save(tmp_path / "bad.npy", np.full((4, 4, 4), 2.0, np.float32))
    with pytest.raises(DataError, match="not an occupancy"):
        d.read_observations(tmp_path / "bad.npy")
    np.save(tmp_path / "m5.npy", np.ones((5, 5, 5), np.uint8))
    with pytest.raises(DataError, match="mask of shape"):
        d.read_observations(tmp_path / "raw.npy", mask=tmp_path / "m5.npy")
    assert d.read_item(tmp_path / "raw.npy").shape == (1, 4, 4, 4)

"""The real ERA5 and image layouts through the CLI: `data show`, `data prepare`, and a few
training steps with `--data`; bad files give one line and exit 2."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from PIL import Image


def run(capsys, *args):
    from inrkit_cli.main import main

    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def one_error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def kelvin(lat, lon, t):
    la, lo = np.meshgrid(np.deg2rad(lat), np.deg2rad(lon), indexing="ij")
    return (250 + 45 * np.cos(la) ** 2 + 3 * np.sin(2 * lo + t)).astype(np.float32)


def wb2(lat, lon, n=4, name="2m_temperature", dims=("time", "latitude", "longitude")):
    data = np.stack([kelvin(lat, lon, t) for t in range(n)])
    return xr.Dataset({name: (dims, data, {"units": "K"})},
                      coords={dims[0]: pd.date_range("2021-01-01", periods=n), dims[1]: lat, dims[2]: lon})


@pytest.fixture
def era5_files(tmp_path):
    """WeatherBench2-style NetCDF (descending lat, 0..360), a zarr store (ascending lat,
    -180..180, lat/lon names, a `t2m` variable), and a GASP folder of .npz."""
    nc = tmp_path / "era5.nc"
    wb2(np.linspace(90, -90, 33), np.arange(0, 360, 5.0)).to_netcdf(nc, engine="h5netcdf")
    zr = tmp_path / "era5.zarr"
    wb2(np.linspace(-88, 88, 23), np.arange(-180, 180, 6.0), name="t2m", dims=("time", "lat", "lon")).to_zarr(zr)
    npz = tmp_path / "gasp"
    npz.mkdir()
    lat, lon = np.linspace(90, -90, 46), np.arange(0, 360, 4.0)
    for i in range(5):
        np.savez(npz / f"t{i}.npz", latitude=lat, longitude=lon, temperature=kelvin(lat, lon, i))
    return {"nc": nc, "zarr": zr, "npz": npz}


@pytest.mark.parametrize("layout,n", [("nc", 4), ("zarr", 4), ("npz", 5)])
def test_era5_layouts_show_and_prepare(era5_files, tmp_path, capsys, monkeypatch, layout, n):
    monkeypatch.chdir(tmp_path)  # the last `data show` writes its default inrkit-show/<store>/show-all.png here
    path = era5_files[layout]
    code, out, err = run(capsys, "data", "show", "--modality", "sphere", "--data", path, "--out", tmp_path / "show.png")
    assert code == 0, err
    assert f"{n}" in out and "(1, 46, 90)" in out
    assert (tmp_path / "show.png").stat().st_size > 0
    store = tmp_path / f"{layout}-cache.zarr"
    code, _, err = run(capsys, "data", "prepare", "--modality", "sphere", "--data", path, "--out", store)
    assert code == 0, err
    code, out, err = run(capsys, "data", "show", "--modality", "sphere", "--data", store, "--n", "2")
    assert code == 0, err
    default = Path("inrkit-show") / f"{layout}-cache" / "show-all.png"
    assert f"{n}" in out and (tmp_path / default).is_file() and f"wrote     {default}" in out


def test_train_a_few_steps_on_netcdf(era5_files, tmp_path, capsys):
    out_dir = tmp_path / "run"
    code, _, err = run(capsys, "train", "ldmi", "--modality", "sphere", "--preset", "tiny", "--data", era5_files["nc"],
                       "--out", out_dir, "--set", "train.vae.steps=2", "--set", "train.prior.steps=2",
                       "--set", "train.progress=false")
    assert code == 0, err
    assert (out_dir / "model.safetensors").is_file()
    assert "era5.nc" in (out_dir / "config.yaml").read_text()


def test_image_folder_of_mixed_sizes_show_and_prepare(tmp_path, capsys):
    rng = np.random.default_rng(0)
    root = tmp_path / "faces"
    for split, sizes in (("train", [(40, 30), (64, 64), (20, 50)]), ("val", [(33, 47)])):
        for i, (h, w) in enumerate(sizes):
            (root / split).mkdir(parents=True, exist_ok=True)
            mode_shape = (h, w, 3) if i % 2 == 0 else (h, w)
            Image.fromarray(rng.integers(0, 255, mode_shape, dtype=np.uint8)).save(root / split / f"{i}.{'jpg' if i % 2 else 'png'}")
    code, out, err = run(capsys, "data", "show", "--modality", "image", "--data", root, "--set", "domain.resolution=16",
                         "--out", tmp_path / "faces.png")
    assert code == 0, err
    assert "(3, 16, 16)" in out and "4" in out
    code, _, err = run(capsys, "data", "prepare", "--modality", "image", "--data", root, "--set", "domain.resolution=16",
                       "--out", tmp_path / "faces.zarr")
    assert code == 0, err


def test_bad_era5_and_image_inputs_are_one_line_exit_2(era5_files, tmp_path, capsys):
    code, _, err = run(capsys, "data", "show", "--modality", "sphere", "--data", era5_files["nc"], "--set", "data.variable=nope")
    assert code == 2 and "nope" in one_error_line(err) and "2m_temperature" in err
    nan = tmp_path / "nan.nc"
    ds = wb2(np.linspace(90, -90, 33), np.arange(0, 360, 5.0))
    ds["2m_temperature"][1, 3, 4] = np.nan
    ds.to_netcdf(nan, engine="h5netcdf")
    code, _, err = run(capsys, "data", "show", "--modality", "sphere", "--data", nan)
    assert code == 2 and "nan.nc" in one_error_line(err) and "NaN" in err
    bad = tmp_path / "imgs"
    bad.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(bad / "ok.png")
    (bad / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    out = tmp_path / "never.zarr"
    code, _, err = run(capsys, "data", "prepare", "--modality", "image", "--data", bad, "--out", out)
    assert code == 2 and "broken.jpg" in one_error_line(err)
    assert not out.exists()


def test_extra_dimension_is_chosen_with_data_select(tmp_path, capsys):
    lat, lon = np.linspace(-88, 88, 23), np.arange(0, 360, 6.0)
    base = np.stack([kelvin(lat, lon, t) for t in range(2)])
    levels = np.stack([base - 40, base - 20, base], axis=1)  # (time, level, lat, lon)
    store = tmp_path / "levels.zarr"
    xr.Dataset({"temperature": (("time", "level", "latitude", "longitude"), levels, {"units": "K"})},
               coords={"time": pd.date_range("2020", periods=2), "level": [500, 850, 1000],
                       "latitude": lat, "longitude": lon}).to_zarr(store)
    code, _, err = run(capsys, "data", "show", "--modality", "sphere", "--data", store, "--out", tmp_path / "a.png")
    assert code == 2 and "level (3)" in one_error_line(err) and "data.select" in err

    import inrkit
    from inrkit.data import open_dataset

    domain = inrkit.build("domains", "sphere", n_lat=23, n_lon=60, layout="centres")
    ref = open_dataset(domain, store, split="all", select={"level": 1000})
    mid = open_dataset(domain, store, split="all", select={"level": 840})  # nearest: 850
    unit = domain.physical(ref[0][None]) - domain.physical(mid[0][None])
    assert torch.allclose(unit, torch.full_like(unit, 20.0), atol=0.05)
    code, _, err = run(capsys, "data", "show", "--modality", "sphere", "--data", store, "--set", "data.select={level: 850}",
                       "--out", tmp_path / "b.png")
    assert code == 0, err
    code, _, err = run(capsys, "data", "show", "--modality", "sphere", "--data", store, "--set", "data.select={member: 1}")
    assert code == 2 and "member" in one_error_line(err)

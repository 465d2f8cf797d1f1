"""What a person looks at, through the CLI: previews at a viewable size whatever the training
grid, labelled; maps with a difference panel; reconstruction NetCDF with the held-out items' own
time; mesh formats, components and empty shapes; what the data became, said once; and
``inrkit report`` (parsed, and rendered by a headless browser where one is installed)."""
from __future__ import annotations

import base64
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import trimesh
import xarray as xr
from PIL import Image

from conftest import cli

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--preset", "tiny", "--device", "cpu", "--set", "train.vae.steps=2", "--set", "train.prior.steps=2",
        "--set", "train.n_renders=2", "--set", "train.sample_steps=2", "--set", "train.progress=false",
        "--set", "train.vae.batch_size=4", "--set", "train.prior.batch_size=4"]


def size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.size


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sections, self.images, self.links = [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a.get("id"))
        if tag in ("img", "script", "link", "iframe"):
            self.images.append(a.get("src") or a.get("href") or "")
        if tag == "a":
            self.links.append(a.get("href", ""))


def parse_report(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text())
    assert page.images, "no pictures"
    for src in page.images:  # self-contained: every picture embedded, nothing fetched
        assert src.startswith("data:image/png;base64,"), src[:80]
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert all(href.startswith("#") for href in page.links)
    return page


def test_image_previews_conversion_and_report(tmp_path, capsys):
    rng = np.random.default_rng(0)
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(10):
        Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(photos / f"holiday_{i}.jpg")
    before = sorted(photos.iterdir())
    run = tmp_path / "run"
    code, out, err = cli(["train", "ldmi", "-m", "image", "--data", photos, "--out", run, *FAST], capsys)
    assert code == 0, err
    # what the photos became is said once, at the start, and kept in run.json
    said = [line for line in err.splitlines() if line.startswith("data: ")]
    assert len(said) == 1 and "colour; 40x30 px" in said[0] and "become 16x16 px greyscale (1 channel" in said[0], err
    assert json.loads((run / "run.json").read_text())["data"]["conversion"] == said[0][len("data: "):]
    assert sorted(photos.iterdir()) == before

    # previews: tiles of at least 256 px (the INR decoded again), labelled, beside the exact 16 px pixels
    samples = run / "samples" / "after-prior"
    w, h = size(samples / "samples.png")
    assert w >= 2 * 256 and h >= 256
    assert size(samples / "samples-pixels.png")[0] < 64
    recon = run / "reconstructions" / "after-vae"
    assert min(size(recon / "reconstructions.png")) >= 256 and min(size(recon / "targets.png")) >= 256

    code, out, err = cli(["sample", run, "--n", 3, "--seed", 5, "--ddim-steps", 2], capsys)
    assert code == 0, err
    assert size(run / "samples" / "samples-16x16-seed5.png")[0] >= 3 * 256
    assert size(run / "samples" / "samples-16x16-seed5-pixels.png")[0] < 80
    code, _, err = cli(["sample", run, "--n", 1, "--format", "glb"], capsys)
    assert code == 2 and "--format chooses mesh files; the 'image' domain writes none" in err

    code, out, err = cli(["report", run], capsys)
    assert code == 0, err
    page = parse_report(run / "report.html")
    assert page.sections == ["data", "curves", "heldout", "samples", "reconstructions", "config"]
    text = (run / "report.html").read_text()
    assert "become 16x16 px greyscale" in text and "psnr" in text
    assert "after stage vae (1 item)" in text and "kl_reduction" in text
    assert "speed settings" in text and "AdamW default, training set through a DataLoader, NCHW" in text


def test_sphere_maps_and_reconstruction_netcdf_keep_time(tmp_path, capsys):
    lat, lon = np.linspace(88, -88, 23), np.arange(0, 360, 7.5)
    times = pd.date_range("2021-03-01", periods=10, freq="D")
    la, lo = np.meshgrid(np.deg2rad(lat), np.deg2rad(lon), indexing="ij")
    data = np.stack([250 + 45 * np.cos(la) ** 2 + 3 * np.sin(2 * lo + t) for t in range(10)]).astype(np.float32)
    src = tmp_path / "t2m.nc"
    xr.Dataset({"2m_temperature": (("time", "latitude", "longitude"), data, {"units": "K"})},
               coords={"time": times, "latitude": lat, "longitude": lon}).to_netcdf(src, engine="h5netcdf")
    run = tmp_path / "run"
    code, out, err = cli(["train", "ldmi", "-m", "sphere", "--data", src, "--out", run, *FAST], capsys)
    assert code == 0, err
    assert "on a 23x48 latitude x longitude grid are regridded" in err and "the 46x90 training grid" in err

    recon = run / "reconstructions" / "after-vae"
    with xr.open_dataset(recon / "reconstructions.nc", engine="h5netcdf") as ds:
        assert ds["2m_temperature"].shape[1:] == (46, 90)  # the training grid
        held = pd.to_datetime(ds["time"].values)
        assert ds["time"].dims == ("sample",)
    import inrkit
    from inrkit.data import open_dataset

    domain = inrkit.load_run(run, device="cpu").domain
    val = open_dataset(domain, src, split="val")
    assert list(held) == list(pd.to_datetime(val.times)) and set(held) <= set(times)
    with xr.open_dataset(recon / "targets.nc", engine="h5netcdf") as ds:
        assert list(pd.to_datetime(ds["time"].values)) == list(held)
    # and on the user's own 23 x 48 grid: the INR rendered at the file's coordinates, the targets as stored
    with xr.open_dataset(recon / "targets-source-grid.nc", engine="h5netcdf") as ds:
        assert np.array_equal(ds["latitude"].values, lat) and np.array_equal(ds["longitude"].values, lon)
        rows = [list(times).index(t) for t in held]
        assert np.allclose(ds["2m_temperature"].values, data[rows], atol=1e-4)
        assert list(pd.to_datetime(ds["time"].values)) == list(held)
    with xr.open_dataset(recon / "reconstructions-source-grid.nc", engine="h5netcdf") as ds:
        field = ds["2m_temperature"].values
        assert field.shape == (len(held), 23, 48) and np.isfinite(field).all()
        assert np.array_equal(ds["latitude"].values, lat) and ds["2m_temperature"].attrs["units"] == "K"

    # maps: at least 720 px wide, a difference panel beside each reconstruction
    assert size(run / "samples" / "after-vae" / "samples.png")[0] >= 720
    assert size(recon / "reconstructions.png")[0] > size(recon / "targets.png")[0] >= 720
    code, out, err = cli(["report", run, "--out", tmp_path / "page.html"], capsys)
    assert code == 0, err
    assert "reconstructions" in parse_report(tmp_path / "page.html").sections


def test_occupancy_formats_components_and_empty_shapes(tmp_path, capsys):
    meshes_dir = tmp_path / "meshes"
    meshes_dir.mkdir()
    for k in range(8):  # boxes in millimetres, far from the origin
        box = trimesh.creation.box(extents=(40.0 + 5 * k, 20.0, 30.0))
        box.apply_translation((500.0, 120.0, -40.0))
        box.export(meshes_dir / f"part_{k}.stl")
    run = tmp_path / "run"
    code, out, err = cli(["train", "ldmi", "-m", "occupancy", "--data", meshes_dir, "--out", run, *FAST], capsys)
    assert code == 0, err
    assert "meshes are centred on their bounding box" in err and "voxelised to 16^3 occupancies" in err
    # the held-out targets' meshes come back in the files' own units (mm), not the unit cube
    import inrkit
    from inrkit.data import open_dataset

    val = open_dataset(inrkit.load_run(run, device="cpu").domain, meshes_dir, split="val")
    source = trimesh.load(val.files[0], force="mesh")
    target = trimesh.load(run / "reconstructions" / "after-vae" / "targets_000.ply", force="mesh")
    voxel = source.extents.max() / 0.95 * 2 / 16
    assert np.allclose(target.bounds, source.bounds, atol=1.5 * voxel)
    assert val.files[0].name in " ".join(err.split())  # the item is named in the line about its meshes
    code, out, err = cli(["sample", run, "--n", 2, "--seed", 1, "--ddim-steps", 2, "--format", "ply+glb"], capsys)
    assert code == 0, err
    written = sorted((run / "samples").glob("samples-16x16x16-seed1*"))
    meshes = [p for p in written if p.suffix in (".ply", ".glb")]
    line = next(line for line in err.splitlines() if line.startswith("samples-16x16x16-seed1:"))
    for i in range(2):
        label = f"sample {i} · seed 1: "
        assert label in line
        if (run / "samples" / f"samples-16x16x16-seed1_{i:03d}.ply").exists():
            glb = trimesh.load(run / "samples" / f"samples-16x16x16-seed1_{i:03d}.glb", force="mesh")
            assert len(glb.faces) > 0 and "connected component" in line.split(label)[1]
        else:
            assert "no surface" in line.split(label)[1]
    assert all(p.stat().st_size > 0 for p in meshes)
    w, h = size(run / "samples" / "samples-16x16x16-seed1.png")
    assert w >= 2 * 256 and h >= 256
    code, _, err = cli(["sample", run, "--n", 1, "--format", "stl"], capsys)
    assert code == 2 and "mesh format must be one of ply, obj, glb" in err

    # an empty shape is said, and its tile says so, rather than being skipped in silence
    shapes = tmp_path / "shapes"
    shapes.mkdir()
    full = np.zeros((16, 16, 16), bool)
    full[4:12, 2:10, 4:12] = True
    np.save(shapes / "box.npy", full)
    np.save(shapes / "empty.npy", np.zeros((16, 16, 16), bool))
    code, out, err = cli(["data", "show", "-m", "occupancy", "--data", shapes, "--set", "domain.resolution=16",
                         "--out", tmp_path / "show.png"], capsys)
    assert code == 0, err
    assert "item 0: box.npy: 1 connected component" in err
    assert "item 1: empty.npy: no surface: every occupancy is <= 0.5, so no mesh is written" in err
    assert min(size(tmp_path / "show.png")) >= 256


def test_report_of_a_comparison(tmp_path, capsys):
    results = ROOT / "benchmarks" / "results-compare-h200" / "sphere"
    code, out, err = cli(["report", results, "--out", tmp_path / "compare.html"], capsys)
    assert code == 0, err
    page = parse_report(tmp_path / "compare.html")
    assert page.sections == ["settings", "compare-tables", "reconstructions", "scaling"]
    text = (tmp_path / "compare.html").read_text()
    assert "hypernet params" in text and "INR params" in text
    code, _, err = cli(["report", tmp_path / "nothing"], capsys)
    assert code == 2 and "no such run directory" in err
    (tmp_path / "empty").mkdir()
    code, _, err = cli(["report", tmp_path / "empty"], capsys)
    assert code == 2 and "not a run directory (no config.yaml) nor a comparison" in err


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="needs a headless browser: runs where Debian's chromium is installed"
                                              " (apt-get install chromium)")
def test_report_renders_in_a_headless_browser(tmp_path, capsys):
    results = ROOT / "benchmarks" / "results-compare-h200" / "sphere"
    page = tmp_path / "compare.html"
    code, _, err = cli(["report", results, "--out", page], capsys)
    assert code == 0, err
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'ud'}",
                    "--window-size=1200,1600", f"--screenshot={shot}", page.as_uri()],
                   check=True, capture_output=True)
    img = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert img.shape == (1600, 1200)
    # not blank: text, tables and plots give many dark pixels and a spread of grey levels
    assert (img < 128).mean() > 0.01 and img.std() > 20

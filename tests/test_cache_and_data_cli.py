"""``inrkit data prepare`` / ``data show`` on every layout, the zarr cache, and one-line errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
import zarr

import inrkit
from inrkit.data import open_dataset
from inrkit.errors import DataError
from inrkit.outputs import MANIFEST
from inrkit_modalities.cache import is_prepared_cache, prepare_cache
from inrkit_modalities.occupancy.chairs import chair
from inrkit_modalities.occupancy.voxelize import boxes_to_voxels

from conftest import cli, error_line


def occupancy(resolution=32):
    return inrkit.build("domains", "occupancy", resolution=resolution)


def stored(path):
    return zarr.open_group(str(path), mode="r")


def test_voxel_folder_prepare_then_show_from_the_cache(tmp_path, capsys):
    src = tmp_path / "voxels"
    (src / "sub").mkdir(parents=True)
    torch.save(torch.from_numpy(chair(0, 0, 32)).float()[None], src / "a.pt")
    np.save(src / "b.npy", chair(0, 1, 64).astype(np.uint8))  # 64³ into a 32³ domain
    torch.save({"occupancy": torch.from_numpy(chair(0, 2, 32))}, src / "c.pt")
    np.save(src / "sub" / "d.npy", chair(0, 3, 32)[None].astype(np.float32))
    out = tmp_path / "shapes.zarr"
    code, _, err = cli(["data", "prepare", "--modality", "occupancy", "--data", src, "--out", out], capsys)
    assert code == 0, err
    assert is_prepared_cache(out) and occupancy().dataset_for(out) == "zarr_cache"
    g = stored(out)
    assert g["data"].shape == (4, 1, 32, 32, 32) and g["data"].chunks == (1, 1, 32, 32, 32)
    assert g.attrs["domain"]["name"] == "occupancy" and g.attrs["dataset"]["name"] == "voxel_folder"
    assert g.attrs["count"] == 4 and g.attrs["dataset_meta"]["source_resolution"] == 32
    direct = open_dataset(occupancy(), src, split="all")
    assert np.array_equal(g["data"][:], torch.stack([direct[i] for i in range(4)]).numpy())
    png = tmp_path / "show.png"
    code, out_text, err = cli(["data", "show", "-m", "occupancy", "--data", out, "--out", png, "--n", 3], capsys)
    assert code == 0, err
    assert "items     4" in out_text and "(1, 32, 32, 32)" in out_text and "[0, 1]" in out_text
    assert png.is_file() and png.stat().st_size > 1000
    # no meshes left over (beside the outputs, inrkit's record of what it wrote there)
    assert sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST, "shapes.zarr", "show.png", "voxels"]
    code, out_text, _ = cli(["data", "show", "-m", "occupancy", "--data", src, "--out", png], capsys)
    assert code == 0 and "voxel_folder" in out_text


def test_mesh_folder_prepare(tmp_path, capsys):
    src = tmp_path / "ShapeNet" / "03001627"
    for sub in ("m1/models", "m2/models", "m3"):
        (src / sub).mkdir(parents=True)
    trimesh.creation.box(extents=(1.0, 2.0, 1.5)).export(src / "m1/models/model_normalized.obj")
    trimesh.creation.icosphere(subdivisions=2).export(src / "m2/models/model.ply")
    trimesh.creation.cylinder(radius=0.5, height=2.0, sections=16).export(src / "m3/part.off")
    out = tmp_path / "meshes.zarr"
    before = sorted(p for p in src.rglob("*"))
    code, _, err = cli(["data", "prepare", "-m", "occupancy", "--data", src, "--out", out, "--set", "domain.resolution=16",
                       "--cache", tmp_path / "voxels"], capsys)
    assert code == 0, err
    data = stored(out)["data"][:]
    assert data.shape == (3, 1, 16, 16, 16)
    # the voxel cache goes where --cache says, never into the user's dataset folder
    assert len(list((tmp_path / "voxels" / "16").glob("*.npy"))) == 3
    assert sorted(p for p in src.rglob("*")) == before
    direct = open_dataset(occupancy(16), src, split="all")
    assert np.array_equal(data, torch.stack([direct[i] for i in range(3)]).numpy())
    # normalised: longest side 2·0.95, centred; the closed box voxelises exactly
    box = boxes_to_voxels(np.array([[[-0.475, -0.95, -0.7125], [0.475, 0.95, 0.7125]]]), 16)
    assert np.array_equal(data[0, 0], box)
    fill = data.mean((1, 2, 3, 4))
    assert fill[1] == pytest.approx(np.pi / 6 * 0.95**3, rel=0.06)  # ball of radius 0.95
    assert fill[2] == pytest.approx(np.pi * 0.475**2 * 1.9 / 8, rel=0.15)  # cylinder


def test_chairs_cache_splits_workers_overwrite_and_shape_check(tmp_path, capsys):
    out = tmp_path / "chairs.zarr"
    args = ["data", "prepare", "-m", "occupancy", "--out", out, "--set", "domain.resolution=16", "--set", "data.n_items=10",
            "--chunk-items", 4]
    code, _, err = cli([*args], capsys)
    assert code == 0, err
    assert stored(out)["data"].chunks == (4, 1, 16, 16, 16)
    d = occupancy(16)
    for split in ("train", "val", "all"):
        source = open_dataset(d, None, split=split, n_items=10)
        cache = open_dataset(d, out, split=split)
        assert len(cache) == len(source)
        assert all(torch.equal(cache[i], source[i]) for i in range(len(cache)))
    assert len(open_dataset(d, out, split="val", val_fraction=0.5)) == 5
    loader = torch.utils.data.DataLoader(open_dataset(d, out, split="all"), batch_size=3, num_workers=2)
    batches = torch.cat(list(loader))
    assert batches.shape == (10, 1, 16, 16, 16) and torch.equal(batches[7], open_dataset(d, None, split="all")[7])
    # the cache's grid must match the domain's
    code, _, err = cli(["data", "show", "-m", "occupancy", "--data", out, "--out", tmp_path / "x.png"], capsys)
    line = error_line(err)
    assert code == 2 and "(1, 16, 16, 16)" in line and "(1, 32, 32, 32)" in line and "chairs.zarr" in line
    with pytest.raises(DataError, match="prepared for the 'occupancy' domain, not 'image'"):
        open_dataset(inrkit.build("domains", "image", resolution=16, channels=1), out)
    # an existing output is kept unless --overwrite
    code, _, err = cli([*args[:-2], "--set", "data.n_items=5"], capsys)
    assert code == 2 and "--overwrite" in error_line(err) and stored(out).attrs["count"] == 10
    code, _, err = cli([*args, "--set", "data.n_items=5", "--overwrite"], capsys)
    assert code == 0, err
    assert stored(out).attrs["count"] == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST, "chairs.zarr"]


def test_bad_inputs_exit_2_with_one_line_and_write_nothing(tmp_path, capsys):
    out = tmp_path / "out" / "store.zarr"
    prepare = ["data", "prepare", "-m", "occupancy", "--out", out]
    missing = tmp_path / "nowhere"
    code, _, err = cli([*prepare, "--data", missing], capsys)
    assert code == 2 and str(missing) in error_line(err) and "does not exist" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = cli([*prepare, "--data", empty], capsys)
    assert code == 2 and "empty" in error_line(err) and "no voxel tensors" in err
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    np.save(wrong / "flat.npy", np.zeros((32, 32, 8), dtype=np.float32))
    code, _, err = cli([*prepare, "--data", wrong], capsys)
    assert code == 2 and "flat.npy" in error_line(err) and "(32, 32, 8)" in err
    # a bad file met half-way through writing: nothing half-written is left behind
    late = tmp_path / "late"
    late.mkdir()
    torch.save(torch.zeros(1, 32, 32, 32), late / "a.pt")
    torch.save(torch.zeros(2, 32, 32, 32), late / "b.pt")
    code, _, err = cli([*prepare, "--data", late], capsys)
    assert code == 2 and "b.pt" in error_line(err) and "(2, 32, 32, 32)" in err
    assert not out.parent.exists()  # the folder made for it went again: nothing half-written, nothing left
    code, _, err = cli([*prepare, "--set", "resolution=64"], capsys)
    assert code == 2 and "domain.KEY" in error_line(err)
    code, _, err = cli([*prepare, "--set", "data.n_itemz=3"], capsys)
    assert code == 2 and "n_itemz" in error_line(err)
    code, _, err = cli(["data", "show", "-m", "occupancy", "--data", tmp_path / "wrong" / "flat.npy"], capsys)
    assert code == 2 and "flat.npy" in error_line(err)
    code, _, err = cli(["data", "show", "-m", "voxels"], capsys)
    assert code == 2 and "unknown domain 'voxels'" in error_line(err)
    assert not out.exists()


def test_prepare_cache_api_refuses_existing_output(tmp_path):
    ds = open_dataset(occupancy(8), None, split="all", n_items=2)
    path = prepare_cache(ds, tmp_path / "a.zarr", meta={"domain": {"name": "occupancy"}})
    assert is_prepared_cache(path) and not is_prepared_cache(tmp_path)
    with pytest.raises(DataError, match="output exists"):
        prepare_cache(ds, path, meta={})
    assert torch.equal(open_dataset(occupancy(8), path, split="all")[1], ds[1])


def test_image_builtin_prepare_and_show(tmp_path, capsys):
    out = tmp_path / "faces.zarr"
    sets = ["--set", "domain.resolution=16", "--set", "data.n_items=6"]
    code, _, err = cli(["data", "prepare", "-m", "image", "--out", out, *sets], capsys)
    assert code == 0, err
    assert stored(out)["data"].shape == (6, 3, 16, 16)
    png = tmp_path / "faces.png"
    code, text, err = cli(["data", "show", "-m", "image", "--data", out, "--out", png, "--set", "domain.resolution=16"], capsys)
    assert code == 0, err
    assert "items     6" in text and "(3, 16, 16)" in text and "physical" in text and png.is_file()


def test_sphere_builtin_prepare_and_show(tmp_path, capsys):
    out = tmp_path / "t2m.zarr"
    sets = ["--set", "domain.n_lat=12", "--set", "domain.n_lon=24"]
    code, _, err = cli(["data", "prepare", "-m", "sphere", "--out", out, *sets, "--set", "data.n_items=4"], capsys)
    assert code == 0, err
    assert stored(out)["data"].shape == (4, 1, 12, 24)
    png = tmp_path / "t2m.png"
    code, text, err = cli(["data", "show", "-m", "sphere", "--data", out, "--out", png, *sets], capsys)
    assert code == 0, err
    assert "items     4" in text and "physical" in text and png.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST, "t2m.png", "t2m.zarr"]


def test_a_source_with_its_own_split_keeps_it_in_the_cache(tmp_path, capsys):
    from PIL import Image

    for split, n in (("train", 3), ("val", 2)):
        (tmp_path / "imgs" / split).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((8, 8), 40 * i + (100 if split == "val" else 0), np.uint8)).save(tmp_path / "imgs" / split / f"{i}.png")
    out = tmp_path / "imgs.zarr"
    sets = ["--set", "domain.resolution=8", "--set", "domain.channels=1"]
    code, _, err = cli(["data", "prepare", "-m", "image", "--data", tmp_path / "imgs", "--out", out, *sets], capsys)
    assert code == 0, err
    assert stored(out)["split"][:].tolist() == [0, 0, 0, 1, 1]
    d = inrkit.build("domains", "image", resolution=8, channels=1)
    val = open_dataset(d, out, split="val")
    assert len(val) == 2 and torch.equal(val[1], open_dataset(d, tmp_path / "imgs", split="val")[1])

"""The occupancy domain: grid order, metrics, voxelisation, renders and its datasets."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

import inrkit
from inrkit.errors import ConfigError, DataError
from inrkit_modalities.occupancy.chairs import chair
from inrkit_modalities.occupancy.metrics import chamfer_distance, occupancy_metrics
from inrkit_modalities.occupancy.render import _EXTENT, preview
from inrkit_modalities.occupancy.voxelize import boxes_to_voxels, centres, normalise_mesh, resample, surface_voxels, voxelize_mesh


def domain(**cfg):
    return inrkit.build("domains", "occupancy", **cfg)


def cube(lo, hi, R=32):
    v = torch.zeros(1, 1, R, R, R)
    v[0, 0, lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = 1
    return v


# -- the domain ------------------------------------------------------------------------------
def test_grid_is_voxel_centres_in_xyz_order():
    d = domain(resolution=8)
    g = d.grid()
    assert g.shape == (512, 3) and d.grid_shape == (8, 8, 8)
    assert torch.allclose(g[0], torch.full((3,), -1 + 1 / 8)) and torch.allclose(g[-1], torch.full((3,), 1 - 1 / 8))
    # grid tensor index [i, j, k] holds coordinate (x_i, y_j, z_k)
    x = d.to_grid(g[None])  # (1, 3, 8, 8, 8)
    c = torch.from_numpy(centres(8)).float()
    assert torch.allclose(x[0, 0, :, 2, 5], c) and torch.allclose(x[0, 1, 3, :, 1], c) and torch.allclose(x[0, 2, 0, 7, :], c)
    assert torch.equal(d.from_grid(x), g[None])
    assert d.grid(16).shape == (16**3, 3)
    assert d.default_likelihood == "bernoulli" and d.channels == 1 and d.coord_dim == 3
    assert torch.allclose(d.postprocess(torch.tensor([0.0, 100.0, -100.0])), torch.tensor([0.5, 1.0, 0.0]))


def test_resolution_is_validated():
    with pytest.raises(ConfigError, match="resolution"):
        domain(resolution=2)
    assert domain(resolution=64).grid_shape == (64, 64, 64)


# -- metrics ---------------------------------------------------------------------------------
def test_cube_against_itself_and_shifted():
    a = cube((8, 8, 8), (16, 16, 16))
    b = cube((10, 8, 8), (18, 16, 16))  # shifted by 2 voxels along x
    m = domain().metrics(torch.cat([a, a]), torch.cat([a, b]))
    assert m["iou"][0] == 1 and m["chamfer"][0] == 0 and m["accuracy"][0] == 1
    # intersection 6·8·8, union 10·8·8; 2·(2·8·8) voxels disagree out of 32³
    assert m["iou"][1].item() == pytest.approx(6 / 10)
    assert m["accuracy"][1].item() == pytest.approx(1 - 2 * 2 * 64 / 32**3)
    # points on the two x-faces (a third of the surface) are δ from the other cube, the rest ~0:
    # about 2 · δ²/3 summed over both directions
    delta = 2 * 2 / 32
    assert 0.4 * delta**2 < m["chamfer"][1].item() < 1.0 * delta**2


def test_probabilities_are_thresholded_and_empty_shapes_are_named():
    a = cube((4, 4, 4), (12, 12, 12))
    soft = a * 0.9 + 0.05  # p = 0.95 inside, 0.05 outside
    m = occupancy_metrics(soft, a)
    assert m["iou"].item() == 1 and m["accuracy"].item() == 1
    empty = torch.zeros_like(a)
    m = occupancy_metrics(torch.cat([empty, empty]), torch.cat([a, empty]))
    assert m["iou"].tolist() == [0.0, 1.0]
    assert m["chamfer"][0].item() == float("inf") and m["chamfer"][1].item() == 0.0
    # empty space does not inflate IoU the way it inflates accuracy
    small = cube((0, 0, 0), (2, 2, 2))
    m = occupancy_metrics(empty, small)
    assert m["accuracy"].item() > 0.99 and m["iou"].item() == 0


def test_chamfer_is_symmetric_and_seeded():
    a = chair(0, 0, 32)
    b = chair(0, 1, 32)
    assert chamfer_distance(a, b, 512, seed=3) == pytest.approx(chamfer_distance(b, a, 512, seed=3))
    assert chamfer_distance(a, b, 512, seed=3) == chamfer_distance(a, b, 512, seed=3)
    assert chamfer_distance(a, b, 512) > chamfer_distance(a, a, 512) == 0


# -- voxelisation ----------------------------------------------------------------------------
def test_closed_meshes_voxelise_exactly():
    R = 24
    box = trimesh.creation.box(bounds=[[-0.71, -0.33, -0.52], [0.62, 0.41, 0.2]])
    expected = boxes_to_voxels(np.array([box.bounds]), R)
    assert expected.sum() > 100
    assert np.array_equal(voxelize_mesh(box, R), expected)
    inverted = box.copy()
    inverted.invert()
    assert np.array_equal(voxelize_mesh(inverted, R), expected)
    # overlapping closed parts (common in ShapeNet) stay solid where they overlap
    other = trimesh.creation.box(bounds=[[-0.2, -0.6, -0.1], [0.4, 0.1, 0.8]])
    union = trimesh.util.concatenate([box, other])
    assert np.array_equal(voxelize_mesh(union, R), expected | voxelize_mesh(other, R))
    # an inscribed polyhedron of the sphere of radius 0.8
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.8)
    c = centres(R)
    r = np.sqrt(c[:, None, None] ** 2 + c[None, :, None] ** 2 + c[None, None, :] ** 2)
    v = voxelize_mesh(sphere, R)
    assert v[r < 0.78].all() and not v[r > 0.8].any()


def test_open_meshes_fill_like_the_closed_mesh():
    R = 16
    box = trimesh.creation.box(bounds=[[-0.6, -0.5, -0.4], [0.5, 0.45, 0.6]])
    # the same surface with no shared vertices is not watertight for trimesh
    soup = trimesh.Trimesh(box.triangles.reshape(-1, 3), np.arange(36).reshape(12, 3), process=False)
    assert not soup.is_watertight
    v = voxelize_mesh(soup, R)
    solid = boxes_to_voxels(np.array([box.bounds]), R)
    grown = boxes_to_voxels(np.array([box.bounds + [[-2 / R], [2 / R]]]), R)
    assert (v >= solid).all() and (v <= grown).all()
    assert np.array_equal(v, voxelize_mesh(box, R))  # winding number: the soup fills as the closed box does


def test_normalise_and_resample():
    mesh = trimesh.creation.box(extents=(4.0, 1.0, 2.0))
    mesh.apply_translation((10, -3, 2))
    n = normalise_mesh(mesh, margin=0.1)
    assert np.allclose(n.bounds, [[-0.9, -0.225, -0.45], [0.9, 0.225, 0.45]])
    big = np.zeros((64, 64, 64), dtype=bool)
    big[5, 40, 63] = True  # one thin voxel survives max-pooling
    small = resample(big, 32)
    assert small.sum() == 1 and small[2, 20, 31]
    grown = resample(small, 64)
    assert grown.sum() == 8 and grown[4:6, 40:42, 62:64].all()


# -- chairs ----------------------------------------------------------------------------------
def test_chairs_are_deterministic_and_chair_shaped():
    d = domain(resolution=32)
    a = inrkit.build("datasets", "chairs", context={"domain": d}, split="all", n_items=6)
    b = inrkit.build("datasets", "chairs", context={"domain": d}, split="all", n_items=12)
    items = torch.stack([a[i] for i in range(6)])
    assert items.shape == (6, 1, 32, 32, 32) and items.dtype == torch.float32
    assert torch.equal(items, torch.stack([b[i] for i in range(6)]))  # an item ignores n_items
    other = inrkit.build("datasets", "chairs", context={"domain": d}, split="all", n_items=6, seed=1)
    assert not torch.equal(items[0], other[0])
    fill = items.mean((1, 2, 3, 4))
    assert ((fill > 0.01) & (fill < 0.3)).all()
    assert items[:, 0, :, :2, :].sum((1, 2, 3)).min() > 0  # legs reach the floor (the y = -1 side)
    assert (items[:, 0, :, -6:, :].sum((1, 2, 3)) > 0).sum() >= 3  # most backs rise high
    assert len({tuple(x.flatten().nonzero().flatten()[:50].tolist()) for x in items}) == 6
    train = inrkit.build("datasets", "chairs", context={"domain": d}, split="train", n_items=10)
    val = inrkit.build("datasets", "chairs", context={"domain": d}, split="val", n_items=10)
    assert len(train) + len(val) == 10 and not set(train.ids) & set(val.ids)
    # thin parts stay visible at a coarse resolution
    coarse = inrkit.build("datasets", "chairs", context={"domain": domain(resolution=8)}, split="all", n_items=3)
    assert all(coarse[i][0, :, 0, :].sum() > 0 for i in range(3))


# -- rendering -------------------------------------------------------------------------------
def test_render_writes_meshes_and_preview(tmp_path):
    d = domain(resolution=16)
    a = cube((4, 4, 4), (12, 10, 12), R=16)
    empty = torch.zeros_like(a)
    paths = d.render(torch.cat([a, empty]), tmp_path, "s", mesh_format="ply+obj")
    names = sorted(p.name for p in paths)
    assert names == ["s.png", "s_000.obj", "s_000.ply"]  # the empty item has no mesh
    mesh = trimesh.load(tmp_path / "s_000.ply")
    assert mesh.is_watertight
    # outward normals: positive volume, close to the 8·6·8 voxels' volume (corners are cut)
    assert 0.8 * 8 * 6 * 8 * (2 / 16) ** 3 < mesh.volume < 8 * 6 * 8 * (2 / 16) ** 3
    from PIL import Image

    img = np.asarray(Image.open(tmp_path / "s.png"))
    assert img.ndim == 3 and img.shape[2] == 3 and img.shape[0] >= 128
    assert (img < 250).any()
    assert [p.name for p in d.render(a, tmp_path / "png_only", "t")] == ["t_000.ply", "t.png"]


def test_preview_and_meshes_at_128():
    d = domain(resolution=32)
    g = d.grid(128)
    assert g.shape == (128**3, 3)
    ball = (g.pow(2).sum(-1) < 0.5).float().reshape(1, 1, 128, 128, 128)
    img = preview(ball[0, 0].numpy(), 96)
    assert img.shape == (96, 96, 3)
    # orthographic: the ball's outline is a disc of radius sqrt(0.5) centred in the picture
    drawn = (img < 250).any(axis=-1)
    disc = np.pi * 0.5 / (2 * _EXTENT) ** 2
    assert drawn.mean() == pytest.approx(disc, rel=0.1)
    rows, cols = np.nonzero(drawn)
    assert abs(rows.mean() - 47.5) < 2 and abs(cols.mean() - 47.5) < 2


def test_render_at_128_writes_a_closed_mesh(tmp_path):
    d = domain()
    g = d.grid(128)
    ball = (g.pow(2).sum(-1) < 0.5).float().reshape(1, 1, 128, 128, 128)
    paths = d.render(ball, tmp_path, "fine")
    mesh = trimesh.load(paths[0])
    assert mesh.volume == pytest.approx(4 / 3 * np.pi * 0.5**1.5, rel=0.03)


# -- folder datasets -------------------------------------------------------------------------
def test_voxel_folder_reads_pt_npy_and_resamples(tmp_path):
    a = chair(0, 0, 32)
    b = chair(0, 1, 64)
    torch.save(torch.from_numpy(a.astype(np.float32))[None], tmp_path / "a.pt")
    np.save(tmp_path / "b.npy", b.astype(np.uint8))
    torch.save({"voxels": torch.from_numpy(a)}, tmp_path / "c.pt")
    np.save(tmp_path / "d.npy", np.transpose(a, (0, 2, 1)).astype(np.float32))  # stored x, z, y
    d = domain(resolution=32)
    assert d.dataset_for(tmp_path) == "voxel_folder"
    ds = inrkit.data.open_dataset(d, tmp_path, split="all")
    assert len(ds) == 4 and ds.meta["source_resolution"] == 32
    assert torch.equal(ds[0][0], torch.from_numpy(a).float())
    assert torch.equal(ds[1][0], torch.from_numpy(resample(b, 32)).float())
    assert torch.equal(ds[2], ds[0])
    assert not torch.equal(ds[3], ds[0])
    xzy = inrkit.data.open_dataset(d, tmp_path, split="all", axes="xzy")
    assert torch.equal(xzy[3], ds[0])


@pytest.mark.parametrize("name, payload, message", [
    ("flat.npy", np.zeros((32, 32, 16)), r"flat.npy: voxel tensor of shape \(32, 32, 16\)"),
    ("rgb.pt", torch.zeros(3, 8, 8, 8), r"rgb.pt: voxel tensor of shape \(3, 8, 8, 8\)"),
    ("two.pt", {"a": torch.zeros(8, 8, 8), "b": torch.zeros(8, 8, 8)}, r"two.pt: holds a dict with keys \['a', 'b'\]"),
    ("sdf.npy", np.linspace(-1, 1, 512).reshape(8, 8, 8), r"sdf.npy: voxel values span \[-1, 1\]"),
    ("junk.pt", b"not a torch file", r"junk.pt: unreadable voxel file"),
])
def test_voxel_folder_rejects_bad_files(tmp_path, name, payload, message):
    if isinstance(payload, bytes):
        (tmp_path / name).write_bytes(payload)
    elif isinstance(payload, np.ndarray):
        np.save(tmp_path / name, payload)
    else:
        torch.save(payload, tmp_path / name)
    with pytest.raises(DataError, match=message):
        ds = inrkit.data.open_dataset(domain(resolution=8), tmp_path, split="all")
        ds[0]


def test_mesh_folder_voxelises_and_caches(tmp_path, monkeypatch):
    root = tmp_path / "shapes"
    (root / "chair" / "a").mkdir(parents=True)
    (root / "table").mkdir()
    trimesh.creation.box(extents=(2.0, 1.0, 1.0)).export(root / "chair" / "a" / "model.obj")
    trimesh.creation.icosphere(subdivisions=2).export(root / "table" / "ball.off")
    d = domain(resolution=16)
    assert d.dataset_for(root) == "mesh_folder"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    before = sorted(root.rglob("*"))
    ds = inrkit.data.open_dataset(d, root, split="all")
    assert len(ds) == 2
    box = ds[0][0]
    # longest side 2 → 2·0.95: the box spans x fully (but the margin), y and z half of it
    assert box.sum((1, 2)).nonzero().numel() == 16 and box.sum((0, 2)).nonzero().numel() == 8
    # cached in the user cache directory (platformdirs), never in the dataset folder
    assert sorted(root.rglob("*")) == before and str(ds.cache_dir).startswith(str(tmp_path / "xdg" / "inrkit"))
    cached = sorted(ds.cache_dir.glob("*.npy"))
    assert len(cached) == 1 and np.array_equal(np.load(cached[0]), box.numpy() > 0)
    np.save(cached[0], np.zeros((16, 16, 16), dtype=bool))  # a cache hit is read, not recomputed
    assert ds[0].sum() == 0
    # the voxel cache (hidden) never makes a mesh folder look like a voxel folder
    assert d.dataset_for(root) == "mesh_folder"
    # an unwritable cache dir falls back to the user cache
    blocker = tmp_path / "file"
    blocker.write_text("")
    other = inrkit.data.open_dataset(d, root, split="all", cache_dir=str(blocker / "sub"))
    assert str(other.cache_dir).startswith(str(tmp_path / "xdg"))
    assert torch.equal(other[1], ds[1]) and other[1].sum() > 100


def test_mesh_folder_errors(tmp_path):
    d = domain(resolution=8)
    (tmp_path / "bad.ply").write_text("ply\nthis is not a mesh\n")
    ds = inrkit.data.open_dataset(d, tmp_path, split="all")
    with pytest.raises(DataError, match="bad.ply"):
        ds[0]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no voxel tensors"):
        d.dataset_for(empty)

"""Occupancy inputs beyond clean closed meshes: glTF scenes, meshes with holes, point clouds."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import trimesh
import zarr

import inrkit
from conftest import cli, one_line_error
from inrkit.data import open_dataset
from inrkit.errors import DataError
from inrkit_modalities.occupancy.datasets import OpenMeshWarning
from inrkit_modalities.occupancy.meshfiles import MESH_EXTENSIONS, read_mesh
from inrkit_modalities.occupancy.voxelize import _NUDGE, _NUDGE_3D, centres, voxelize_mesh
from inrkit_modalities.occupancy.winding import oriented_with_cap, winding_numbers

FAST = ["--preset", "tiny", "--device", "cpu", "--set", "train.vae.steps=2", "--set", "train.prior.steps=2",
        "--set", "train.n_renders=2", "--set", "train.sample_steps=2", "--set", "train.progress=false",
        "--set", "train.vae.batch_size=4", "--set", "train.prior.batch_size=4"]
T = trimesh.transformations


def occupancy(R=16):
    return inrkit.build("domains", "occupancy", resolution=R)


def grid_points(R):
    c = centres(R)
    return np.stack(np.meshgrid(c, c, c, indexing="ij"), -1).reshape(-1, 3)


def without_faces(mesh, drop):
    """``mesh`` with the faces ``drop`` (mask or indices) removed: holes in it."""
    keep = np.ones(len(mesh.faces), bool)
    keep[drop] = False
    out = trimesh.Trimesh(mesh.vertices, mesh.faces[keep], process=False)
    assert not out.is_watertight
    return out


# -- the closed-mesh path as it was before meshes with holes were handled (reference) ---------
def reference_closed(mesh, R):
    """The previous ``voxelize_mesh`` for watertight meshes, verbatim in substance: ray columns
    along z at nudged (x, y), signed crossings if winding-consistent (flipped if inside out), else parity."""
    winding = bool(mesh.is_winding_consistent)
    tri = np.asarray(mesh.triangles, dtype=np.float64)
    flip = winding and float(mesh.volume) < 0
    delta = np.zeros((R, R, R + 1), dtype=np.int32)
    lo = np.clip(np.ceil((tri[..., :2].min(1) + 1) * R / 2 - 0.5 - 1e-9), 0, R).astype(np.int64)
    hi = np.clip(np.floor((tri[..., :2].max(1) + 1) * R / 2 - 0.5 + 1e-9), -1, R - 1).astype(np.int64)
    c = centres(R)
    for t in range(len(tri)):
        for ix in range(lo[t, 0], hi[t, 0] + 1):
            for iy in range(lo[t, 1], hi[t, 1] + 1):
                p = np.array([c[ix], c[iy]]) + _NUDGE
                a, b, d = tri[t]
                v0, v1, v2 = b[:2] - a[:2], d[:2] - a[:2], p - a[:2]
                den = v0[0] * v1[1] - v1[0] * v0[1]
                if den == 0:
                    continue
                u = (v2[0] * v1[1] - v1[0] * v2[1]) / den
                v = (v0[0] * v2[1] - v2[0] * v0[1]) / den
                if u < 0 or v < 0 or u + v > 1:
                    continue
                z = (1 - u - v) * a[2] + u * b[2] + v * d[2]
                k = int(np.clip(np.floor((z + 1) * R / 2 - 0.5) + 1, 0, R))
                delta[ix, iy, k] += (-1 if den > 0 else 1) * (-1 if flip else 1) if winding else 1
    inside = np.cumsum(delta, axis=2)[..., :R]
    return inside != 0 if winding else (inside % 2) == 1


def watertight_meshes():
    box = trimesh.creation.box(bounds=[[-0.71, -0.33, -0.52], [0.62, 0.41, 0.2]])
    other = trimesh.creation.box(bounds=[[-0.2, -0.6, -0.1], [0.4, 0.1, 0.8]])
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.8)
    inverted = sphere.copy()
    inverted.invert()
    torus = trimesh.creation.torus(major_radius=0.6, minor_radius=0.25, major_sections=16, minor_sections=8)
    torus.apply_transform(T.rotation_matrix(0.7, [1, 0.3, 0]))
    mixed = box.copy()  # watertight, but one face turned: the parity path
    faces = mixed.faces.copy()
    faces[0] = faces[0][::-1]
    mixed = trimesh.Trimesh(mixed.vertices, faces, process=False)
    assert not mixed.is_winding_consistent
    return {"box": box, "union": trimesh.util.concatenate([box, other]), "sphere": sphere, "inverted": inverted,
            "torus": torus, "mixed": mixed}


@pytest.mark.parametrize("R", [16, 20])
def test_watertight_meshes_voxelise_as_before(R):
    for name, mesh in watertight_meshes().items():
        assert mesh.is_watertight, name
        new = voxelize_mesh(mesh, R)
        assert np.array_equal(new, reference_closed(mesh, R)), name
        assert new.any(), name


# -- the generalized winding number ------------------------------------------------------------
def test_winding_numbers_of_a_closed_surface_are_one_inside_zero_outside():
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.8)
    pts = np.array([[0, 0, 0], [0.3, -0.2, 0.1], [0.9, 0, 0], [0, 2, 0], [-0.5, -0.5, -0.5]])
    w = winding_numbers(sphere.triangles, pts)
    assert np.allclose(w, [1, 1, 0, 0, 0], atol=1e-9)
    assert np.allclose(winding_numbers(sphere.triangles[:, ::-1], pts), -w, atol=1e-9)
    # one face of a cube seen from the centre: a sixth of the sphere
    box = trimesh.creation.box(extents=(2, 2, 2))
    top = box.triangles[box.face_normals[:, 2] > 0.9]
    assert winding_numbers(top, [[0, 0, 0]])[0] == pytest.approx(1 / 6, abs=1e-12)
    assert winding_numbers(np.zeros((0, 3, 3)), pts).tolist() == [0.0] * 5


def test_the_cap_closes_the_surface_exactly():
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.8)
    holed = without_faces(sphere, np.random.default_rng(0).choice(len(sphere.faces), 25, replace=False))
    tri, cap = oriented_with_cap(holed)
    assert 0 < len(cap) < len(tri)
    pts = grid_points(8) * 1.1 + _NUDGE_3D
    w_surface = winding_numbers(tri, pts)
    w_closed = winding_numbers(np.concatenate([tri, cap]), pts)
    assert np.allclose(w_closed, np.round(w_closed), atol=1e-9)  # surface + cap is closed: integers
    assert np.allclose(w_surface, winding_numbers(holed.triangles, pts), atol=1e-9)  # already outward


@pytest.mark.parametrize("R", [16, 32])
def test_a_cube_with_a_face_removed_fills_like_the_closed_cube(R):
    box = trimesh.creation.box(bounds=[[-0.7, -0.6, -0.5], [0.65, 0.55, 0.6]])
    solid = voxelize_mesh(box, R)
    for axis in range(3):
        for sign in (1, -1):
            holed = without_faces(box, sign * box.face_normals[:, axis] > 0.9)
            v = voxelize_mesh(holed, R)
            assert (v ^ solid).sum() <= R * R // 64, (axis, sign)  # at most stray voxels at the hole
    # two faces gone: the winding number falls below 1/2 near the open corner only, never outside
    two = without_faces(box, (box.face_normals[:, 2] > 0.9) | (box.face_normals[:, 0] > 0.9))
    v = voxelize_mesh(two, R)
    assert not (v & ~solid).any() and v.sum() > 0.75 * solid.sum()
    assert np.array_equal(v, winding_numbers(two.triangles, grid_points(R) + _NUDGE_3D).reshape(R, R, R) > 0.5)
    # the surface-voxel fallback this replaced left the holed cube hollow
    assert voxelize_mesh(holed, R)[R // 2, R // 2, R // 2]


def test_holes_are_robust_to_orientation_soups_and_match_brute_force():
    R = 16
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.8)
    solid = voxelize_mesh(sphere, R)
    holed = without_faces(sphere, np.random.default_rng(1).choice(len(sphere.faces), 60, replace=False))
    v = voxelize_mesh(holed, R)
    assert np.array_equal(v, solid)
    # exact: the same as summing every triangle's solid angle at the (nudged) centres
    brute = winding_numbers(holed.triangles, grid_points(R) + _NUDGE_3D).reshape(R, R, R) > 0.5
    assert np.array_equal(v, brute)
    inverted = holed.copy()
    inverted.invert()
    assert np.array_equal(voxelize_mesh(inverted, R), v)
    faces = holed.faces.copy()
    faces[::7] = faces[::7, ::-1]  # inconsistent winding, as in many downloaded meshes
    assert np.array_equal(voxelize_mesh(trimesh.Trimesh(holed.vertices, faces, process=False), R), v)
    soup = trimesh.Trimesh(holed.triangles.reshape(-1, 3), np.arange(3 * len(holed.faces)).reshape(-1, 3), process=False)
    assert np.array_equal(voxelize_mesh(soup, R), v)
    # two closed parts, one with a hole, overlapping: their union
    box = trimesh.creation.box(bounds=[[-0.9, -0.2, -0.2], [0.0, 0.2, 0.2]])
    both = trimesh.util.concatenate([holed, box])
    assert not both.is_watertight
    assert np.array_equal(voxelize_mesh(both, R), solid | voxelize_mesh(box, R))
    # a lone open sheet encloses nothing
    sheet = trimesh.Trimesh([[-0.5, -0.5, 0], [0.5, -0.5, 0], [0.5, 0.5, 0], [-0.5, 0.5, 0]], [[0, 1, 2], [0, 2, 3]])
    assert not voxelize_mesh(sheet, R).any()


# -- glTF scenes -------------------------------------------------------------------------------
def chair_scene(k=0):
    """Seat (translated), a leg (rotated), the leg instanced again (second node), a mirrored box."""
    seat = trimesh.creation.box(extents=(1.0 + 0.2 * k, 0.2, 0.9))
    leg = trimesh.creation.cylinder(radius=0.08, height=0.8, sections=8)
    scene = trimesh.Scene()
    scene.add_geometry(seat, node_name="seat", geom_name="seat", transform=T.translation_matrix([0, 0.5, 0]))
    place = [T.translation_matrix([x, 0, 0.3]) @ T.rotation_matrix(np.pi / 2, [1, 0, 0]) for x in (-0.4, 0.4)]
    scene.add_geometry(leg, node_name="leg_a", geom_name="leg", transform=place[0])
    scene.graph.update(frame_to="leg_b", frame_from=scene.graph.base_frame, matrix=place[1], geometry="leg")
    mirror = np.diag([-1.0, 1.0, 1.0, 1.0]) @ T.translation_matrix([0.3, 0.9, -0.3])
    scene.add_geometry(trimesh.creation.box(extents=(0.3, 0.5, 0.1)), node_name="back", geom_name="back", transform=mirror)
    expected = [seat.copy().apply_transform(T.translation_matrix([0, 0.5, 0])),
                leg.copy().apply_transform(place[0]), leg.copy().apply_transform(place[1]),
                trimesh.creation.box(extents=(0.3, 0.5, 0.1)).apply_transform(mirror)]
    return scene, trimesh.util.concatenate(expected)


@pytest.mark.parametrize("suffix", [".glb", ".gltf"])
def test_gltf_scenes_read_as_one_mesh_under_their_node_transforms(tmp_path, suffix):
    scene, expected = chair_scene()
    scene.export(tmp_path / f"chair{suffix}")
    mesh = read_mesh(tmp_path / f"chair{suffix}")
    assert len(mesh.faces) == len(expected.faces) == 12 + 2 * 32 + 12  # seat, two legs (one geometry), back
    assert np.allclose(mesh.bounds, expected.bounds)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume == pytest.approx(expected.volume, rel=1e-6) and mesh.volume > 0  # the mirrored box kept outward
    from inrkit_modalities.occupancy.voxelize import normalise_mesh

    assert np.array_equal(voxelize_mesh(normalise_mesh(mesh), 16), voxelize_mesh(normalise_mesh(expected), 16))


def test_a_folder_of_glb_files_is_a_mesh_folder(tmp_path):
    root = tmp_path / "glb"
    root.mkdir()
    for k in range(3):
        chair_scene(k)[0].export(root / f"chair_{k}.glb")
    d = occupancy(16)
    assert ".glb" in MESH_EXTENSIONS and ".gltf" in MESH_EXTENSIONS
    assert d.dataset_for(root) == "mesh_folder"
    ds = open_dataset(d, root, split="all", cache_dir=str(tmp_path / "cache"))
    assert len(ds) == 3 and "glb" in ds.meta["format"] and ds.meta["not_watertight"] == []
    assert all(ds[i].sum() > 50 for i in range(3))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no shapes here")
    with pytest.raises(DataError, match=r"\.obj/\.ply/\.off/\.stl/\.glb/\.gltf"):
        d.dataset_for(tmp_path / "notes")  # a folder with neither kind names every accepted suffix


def test_a_scene_without_triangles_is_one_line_naming_the_file(tmp_path):
    scene = trimesh.Scene()
    scene.add_geometry(trimesh.PointCloud(np.random.default_rng(0).uniform(-1, 1, (12, 3))))
    scene.add_geometry(trimesh.load_path(np.array([[0.0, 0, 0], [1, 1, 1]])))
    scene.export(tmp_path / "lines.glb")
    with pytest.raises(DataError) as err:
        read_mesh(tmp_path / "lines.glb")
    message = str(err.value)
    assert "lines.glb" in message and "12 points and 1 line but no faces" in message and "\n" not in message


# -- point clouds ------------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["binary", "ascii"])
def test_a_point_cloud_ply_fails_when_the_folder_is_opened(tmp_path, encoding):
    trimesh.creation.box().export(tmp_path / "box.obj")
    cloud = trimesh.PointCloud(np.random.default_rng(0).uniform(-1, 1, (30, 3)))
    (tmp_path / "scan.ply").write_bytes(trimesh.exchange.ply.export_ply(cloud, encoding=encoding))
    with pytest.raises(DataError) as err:
        open_dataset(occupancy(8), tmp_path, split="all")
    message = str(err.value)
    assert "scan.ply" in message and "30 points but no faces" in message and ".npy" in message
    assert "\n" not in message
    with pytest.raises(DataError, match="30 points but no faces"):  # reading it directly says the same
        read_mesh(tmp_path / "scan.ply")


def test_an_obj_of_vertices_only_says_so(tmp_path):
    (tmp_path / "v.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    ds = open_dataset(occupancy(8), tmp_path, split="all")
    with pytest.raises(DataError, match=r"v\.obj: holds 3 points but no faces"):
        ds[0]


# -- which files were not watertight -----------------------------------------------------------
def holed_folder(root):
    root.mkdir()
    box = trimesh.creation.box(extents=(1.6, 1.2, 1.0))
    without_faces(box, box.face_normals[:, 1] > 0.9).export(root / "cup.obj")
    trimesh.creation.icosphere(subdivisions=1).export(root / "ball.stl")
    trimesh.creation.box(extents=(1.0, 0.5, 0.5)).export(root / "brick.off")
    (root / "sub").mkdir()
    without_faces(trimesh.creation.icosphere(subdivisions=2), [3, 40]).export(root / "sub" / "shell.ply")
    return root


def test_meshes_with_holes_are_announced_and_listed(tmp_path):
    root = holed_folder(tmp_path / "shapes")
    before = sorted(root.rglob("*"))
    d = occupancy(16)
    ds = open_dataset(d, root, split="all", cache_dir=str(tmp_path / "cache"))
    assert ds.meta["not_watertight"] == []  # nothing voxelised yet
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        items = [ds[i] for i in range(len(ds))]
    noted = [str(w.message) for w in caught if issubclass(w.category, OpenMeshWarning)]
    assert len(noted) == 2 and any("cup.obj" in m for m in noted) and any("shell.ply" in m for m in noted)
    assert ds.meta["not_watertight"] == ["cup.obj", "sub/shell.ply"]
    cup = items[[f.name for f in ds.files].index("cup.obj")][0].numpy() > 0
    assert cup[4:12, 4:12, 4:12].all()  # solid, not a hollow shell
    # a later run knows them from the cache, without voxelising or announcing again
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = open_dataset(d, root, split="all", cache_dir=str(tmp_path / "cache"))
        assert all((again[i] == items[i]).all() for i in range(len(again)))
    assert again.meta["not_watertight"] == ["cup.obj", "sub/shell.ply"] and not caught
    assert sorted(root.rglob("*")) == before  # nothing written into the user's folder


def test_prepare_records_them_and_train_runs_on_glb_and_holed_folders(tmp_path, capsys):
    root = holed_folder(tmp_path / "shapes")
    before = sorted(root.rglob("*"))
    code, _, err = cli(["data", "prepare", "-m", "occupancy", "--data", root, "--out", tmp_path / "s.zarr",
                        "--set", "domain.resolution=16", "--cache", tmp_path / "cache"], capsys)
    assert code == 0, err
    assert "warning: " in err and "cup.obj: mesh is not watertight" in err
    attrs = zarr.open_group(str(tmp_path / "s.zarr"), mode="r").attrs.asdict()
    assert attrs["dataset_meta"]["not_watertight"] == ["cup.obj", "sub/shell.ply"]
    code, _, err = cli(["train", "ldmi", "-m", "occupancy", "--data", root, "--out", tmp_path / "run", *FAST], capsys)
    assert code == 0, err
    glb = tmp_path / "glb"
    glb.mkdir()
    for k in range(4):
        chair_scene(k)[0].export(glb / f"chair_{k}.glb")
    code, _, err = cli(["train", "ldmi", "-m", "occupancy", "--data", glb, "--out", tmp_path / "run-glb", *FAST], capsys)
    assert code == 0, err
    assert "3 meshes are centred" in err and (tmp_path / "run-glb" / "config.yaml").is_file()
    assert sorted(root.rglob("*")) == before


def test_cli_point_cloud_is_exit_2_and_one_line(tmp_path, capsys):
    shapes = tmp_path / "shapes"
    shapes.mkdir()
    trimesh.creation.box().export(shapes / "box.stl")
    trimesh.PointCloud(np.random.default_rng(0).uniform(-1, 1, (40, 3))).export(shapes / "scan.ply")
    code, _, err = cli(["train", "ldmi", "-m", "occupancy", "--data", shapes, "--out", tmp_path / "run", *FAST], capsys)
    one_line_error(code, err, "scan.ply", "40 points but no faces")
    code, _, err = cli(["data", "show", "-m", "occupancy", "--data", shapes, "--out", tmp_path / "s.png"], capsys)
    one_line_error(code, err, "scan.ply", "no faces")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shapes"]
    assert sorted(p.name for p in shapes.iterdir()) == ["box.stl", "scan.ply"]


def test_inrkit_folders_hidden_entries_and_link_loops_inside_a_shape_folder_are_passed_over(tmp_path):
    """Sampled meshes in a run or output folder kept under the data are not data; a link back up is
    walked once; hidden files are skipped. A user's own folder named like a run's is still read."""
    from inrkit.outputs import MANIFEST
    from inrkit_modalities.occupancy.datasets import find_mesh_files, find_voxel_files

    root = tmp_path / "shapes"
    box = trimesh.creation.box()
    for rel in ("a/one.obj", "b/two.ply", "run/samples/s0.obj", "run/x.obj", "out/m.obj", ".hid/h.obj",
                "mine/config.yaml/../three.off"):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.suffix != ".yaml":
            box.export(p)
    (root / "run" / "config.yaml").write_text("schema_version: 3\nmodel: {}\n")
    (root / "out" / MANIFEST).write_text('{"format": 1, "files": []}\n')
    (root / "mine" / "config.yaml").rmdir()
    (root / "mine" / "config.yaml").write_text("not: a run\n")  # a user's file of that name: still their data
    (root / "a" / "up").symlink_to(root, target_is_directory=True)
    np.save(root / "a" / "v.npy", np.zeros((4, 4, 4), np.float32))
    (root / "run" / "samples" / "s.npy").write_bytes(b"")

    rel = [p.relative_to(root).as_posix() for p in find_mesh_files(root)]
    assert rel == ["a/one.obj", "b/two.ply", "mine/three.off"], rel
    assert [p.relative_to(root).as_posix() for p in find_voxel_files(root)] == ["a/v.npy"]
    ds = open_dataset(occupancy(8), root, split="all", name="mesh_folder", cache_dir=str(tmp_path / "cache"))
    assert len(ds) == 3

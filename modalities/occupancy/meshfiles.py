"""A user's mesh file read as one triangle mesh: OBJ, PLY, OFF, STL and glTF scenes (GLB/glTF).

Every file is read as a scene (trimesh's ``load_scene``): each node that places a triangle mesh
contributes that mesh under the node's transform, and the parts are concatenated. A file of
points or lines only (a point-cloud PLY, an OBJ of vertices, a GLB of point primitives) is a
``DataError`` naming the file.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import trimesh

from inrkit.errors import DataError

MESH_EXTENSIONS = (".obj", ".ply", ".off", ".stl", ".glb", ".gltf")
MESH_FORMATS = "/".join(e[1:] for e in MESH_EXTENSIONS)  # "obj/ply/off/stl/glb/gltf"
# what a file without faces can be replaced by (the occupancy datasets' other input)
_INSTEAD = ("give a mesh with faces, or voxel grids (.npy/.pt of shape (R, R, R)) in a folder of their own")


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def _no_faces(path: Path, what: str) -> DataError:
    return DataError(f"{path}: holds {what} but no faces, and occupancy needs surfaces; {_INSTEAD}")


def check_mesh_file(path: Path) -> None:
    """Cheap checks when a dataset is opened, so that a bad file fails before training: a PLY
    whose header declares vertices but no faces is a point cloud."""
    if path.suffix.lower() != ".ply":
        return
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
    except OSError as err:
        raise DataError(f"{path}: unreadable mesh ({_first_line(err)})") from None
    end = head.find(b"end_header")
    if not head.startswith(b"ply") or end < 0:
        return  # not a header this check understands: reading the file reports what is wrong
    counts = dict(re.findall(rb"^element\s+(\S+)\s+(\d+)", head[:end], flags=re.M))
    vertices = int(counts.pop(b"vertex", 0))
    if vertices and not any(int(n) for n in counts.values()):
        raise _no_faces(path, f"{vertices} points")


def read_mesh(path: Path) -> trimesh.Trimesh:
    """The file's triangles as one processed mesh (duplicate vertices merged), in the file's units."""
    path = Path(path)
    try:
        # unprocessed first: trimesh's processing silently drops non-finite vertices and their faces
        scene = trimesh.load_scene(path, process=False)
    except Exception as err:
        raise DataError(f"{path}: unreadable mesh ({_first_line(err)})") from None
    vertices, faces, others, offset = [], [], [], 0
    for node in scene.graph.nodes_geometry:
        transform, name = scene.graph[node]
        geom = scene.geometry[name]
        if not isinstance(geom, trimesh.Trimesh) or len(geom.faces) == 0:
            others.append(geom)
            continue
        transform = np.asarray(transform, dtype=np.float64)
        v = np.asarray(geom.vertices, dtype=np.float64)
        bad = int((~np.isfinite(v)).sum())  # before the transform: a matmul over NaN warns on some BLAS
        if bad:
            raise DataError(f"{path}: the mesh's vertices hold {bad} non-finite coordinate(s) (NaN or inf)")
        if not np.isfinite(transform).all():
            raise DataError(f"{path}: a node's transform holds non-finite values (NaN or inf)")
        v = v @ transform[:3, :3].T + transform[:3, 3]
        f = np.asarray(geom.faces, dtype=np.int64)
        if np.linalg.det(transform[:3, :3]) < 0:  # a mirroring node turns its faces inside out
            f = f[:, ::-1]
        vertices.append(v)
        faces.append(f + offset)
        offset += len(v)
    if not faces:
        if not others:
            raise DataError(f"{path}: holds no geometry (no faces); {_INSTEAD}")
        raise _no_faces(path, _describe(others))
    vertices = np.concatenate(vertices)
    return trimesh.Trimesh(vertices=vertices, faces=np.concatenate(faces), process=True)


def _describe(geometries) -> str:
    """'120 points', '1 line' or '120 points and 2 lines'."""
    points = sum(len(g.vertices) for g in geometries if not isinstance(g, trimesh.path.path.Path))
    lines = sum(len(g.entities) for g in geometries if isinstance(g, trimesh.path.path.Path))
    parts = [f"{n} {what}{'s' * (n != 1)}" for n, what in ((points, "point"), (lines, "line")) if n]
    return " and ".join(parts) or "empty parts"

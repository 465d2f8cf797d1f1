"""Between meshes and voxel grids, both ways, on the fixed cube [-1, 1]^3.

Grids are indexed ``[i, j, k]`` ↔ ``(x, y, z)``; voxel ``i`` has its centre at
``-1 + (2i + 1) / R``. A voxel is occupied when its *centre* lies inside the shape.
"""
from __future__ import annotations

import numpy as np
import trimesh
from scipy import ndimage

from .winding import oriented_with_cap, winding_numbers

# Column positions are nudged by an irrational amount so that no ray passes exactly through a
# mesh edge or vertex; otherwise a crossing on a shared edge is counted twice (or not at all).
_NUDGE = np.array([1.234567e-7 * np.sqrt(2.0), 1.234567e-7 * np.sqrt(3.0)])
# Open meshes are also probed off horizontal planes (a cap may lie in the plane of voxel centres).
_NUDGE_3D = np.array([*_NUDGE, 1.234567e-7 * np.sqrt(5.0)])
# Bound on (triangle, column) candidate pairs held at once, so huge meshes stay in bounded memory.
_MAX_PAIRS = 4_000_000


def centres(resolution: int) -> np.ndarray:
    return (np.arange(resolution, dtype=np.float64) * 2 + 1) / resolution - 1


def normalise_mesh(mesh: trimesh.Trimesh, margin: float = 0.05) -> trimesh.Trimesh:
    """Centre the bounding box at the origin; the longest side spans ``2 * (1 - margin)``."""
    lo, hi = mesh.bounds
    extent = float(np.max(hi - lo))
    if not np.isfinite(extent) or extent <= 0:
        raise ValueError("mesh has zero extent")
    out = mesh.copy()
    out.apply_translation(-(lo + hi) / 2)
    out.apply_scale(2 * (1 - margin) / extent)
    return out


def voxelize_mesh(mesh: trimesh.Trimesh, resolution: int) -> np.ndarray:
    """(R, R, R) bool occupancy of a mesh already placed inside [-1, 1]^3.

    Closed (watertight) meshes: exact centre-inside test, by casting one ray per (x, y) column
    along z and accumulating the winding number (overlapping closed parts, common in ShapeNet,
    stay solid). Open meshes (holes): the generalized winding number at each centre exceeds 1/2
    (see ``winding``), so a missing face does not leave the shape hollow.
    """
    if mesh.is_watertight:
        return _solid_columns(mesh, resolution, winding=bool(mesh.is_winding_consistent))
    return open_mesh_voxels(mesh, resolution)


def open_mesh_voxels(mesh: trimesh.Trimesh, R: int) -> np.ndarray:
    """Voxels whose centre has a generalized winding number above 1/2, for meshes with holes.

    Exact: ``w = (signed ray crossings of surface + cap) - (solid angles of the cap)``, both
    taken at the centres moved by ``_NUDGE_3D`` so that they agree on points lying on a triangle;
    where the cap would have more triangles than the surface, the surface's solid angles are summed.
    """
    tri, cap = oriented_with_cap(mesh)
    c = centres(R)
    points = np.stack(np.meshgrid(c, c, c, indexing="ij"), -1).reshape(-1, 3) + _NUDGE_3D
    if len(cap) >= len(tri):
        w = winding_numbers(tri, points)
    else:
        # pad: a nudged centre inside a triangle's xy box is always tried (every crossing counts)
        closed = _column_winding(np.concatenate([tri, cap]), R, winding=True, nudge=_NUDGE_3D, pad=1e-3)
        w = closed.reshape(-1) - winding_numbers(cap, points)
    return (w > 0.5).reshape(R, R, R)


def _solid_columns(mesh: trimesh.Trimesh, R: int, winding: bool) -> np.ndarray:
    tri = np.asarray(mesh.triangles, dtype=np.float64)  # (F, 3 corners, 3)
    # A winding-consistent mesh may still be inside out; make entering crossings count +1.
    flip = winding and float(mesh.volume) < 0
    inside = _column_winding(tri, R, winding, flip=flip)
    return inside != 0 if winding else (inside % 2) == 1


def _column_winding(tri: np.ndarray, R: int, winding: bool, flip: bool = False, nudge: np.ndarray = _NUDGE,
                    pad: float = 1e-9) -> np.ndarray:
    """(R, R, R) int: signed (``winding``) or plain crossings of the triangles below each voxel
    centre + ``nudge`` ((x, y) or (x, y, z)), counted along the +z column through it. A triangle
    is tried on the columns its xy box covers, widened by ``pad`` voxels."""
    delta = np.zeros((R, R, R + 1), dtype=np.int32)
    lo = np.clip(np.ceil((tri[..., :2].min(1) + 1) * R / 2 - 0.5 - pad), 0, R).astype(np.int64)
    hi = np.clip(np.floor((tri[..., :2].max(1) + 1) * R / 2 - 0.5 + pad), -1, R - 1).astype(np.int64)
    counts = np.maximum(hi - lo + 1, 0)
    n_pairs = counts[:, 0] * counts[:, 1]
    keep = np.nonzero(n_pairs)[0]
    # chunks of triangles whose candidate columns together stay under _MAX_PAIRS
    bounds = np.searchsorted(np.cumsum(n_pairs[keep]), np.arange(1, 1 + n_pairs.sum() // _MAX_PAIRS + 1) * _MAX_PAIRS)
    c = centres(R)
    for part in np.split(keep, bounds):
        if part.size == 0:
            continue
        per = n_pairs[part]
        t = np.repeat(part, per)
        local = np.arange(per.sum()) - np.repeat(np.cumsum(per) - per, per)
        nx = counts[t, 0]
        ix = lo[t, 0] + local % nx
        iy = lo[t, 1] + local // nx
        p = np.stack([c[ix], c[iy]], -1) + nudge[:2]
        a, b, d = tri[t, 0], tri[t, 1], tri[t, 2]
        # 2D barycentric coordinates of the column in the triangle's xy projection
        v0, v1, v2 = b[:, :2] - a[:, :2], d[:, :2] - a[:, :2], p - a[:, :2]
        den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
        ok = den != 0
        with np.errstate(divide="ignore", invalid="ignore"):
            u = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / den
            v = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / den
            ok &= (u >= 0) & (v >= 0) & (u + v <= 1)
        if not ok.any():
            continue
        u, v, den, t, ix, iy = u[ok], v[ok], den[ok], t[ok], ix[ok], iy[ok]
        z = (1 - u - v) * tri[t, 0, 2] + u * tri[t, 1, 2] + v * tri[t, 2, 2]
        # first voxel whose centre lies above the crossing
        if len(nudge) == 3:
            z = z - nudge[2]
        k = np.clip(np.floor((z + 1) * R / 2 - 0.5).astype(np.int64) + 1, 0, R)
        if winding:
            # den > 0: the triangle is counter-clockwise seen from +z, i.e. its normal points up,
            # so a ray going up leaves the solid there
            step = np.where(den > 0, -1, 1) * (-1 if flip else 1)
            np.add.at(delta, (ix, iy, k), step.astype(np.int32))
        else:
            np.add.at(delta, (ix, iy, k), 1)
    return np.cumsum(delta, axis=2)[..., :R]


def surface_voxels(mesh: trimesh.Trimesh, resolution: int) -> np.ndarray:
    """Voxels touched by the surface, then cavities the shell encloses filled."""
    pitch = 2.0 / resolution
    verts, _ = trimesh.remesh.subdivide_to_size(
        np.asarray(mesh.vertices), np.asarray(mesh.faces), max_edge=pitch / 3, max_iter=64
    )
    idx = np.clip(np.floor((verts + 1) / pitch).astype(np.int64), 0, resolution - 1)
    vol = np.zeros((resolution,) * 3, dtype=bool)
    vol[idx[:, 0], idx[:, 1], idx[:, 2]] = True
    return ndimage.binary_fill_holes(vol)


def boxes_to_voxels(boxes: np.ndarray, resolution: int) -> np.ndarray:
    """Union of axis-aligned boxes ``(n, 2, 3)`` (lower and upper corners) → (R, R, R) bool."""
    vol = np.zeros((resolution,) * 3, dtype=bool)
    for lo, hi in np.asarray(boxes, dtype=np.float64):
        a = np.clip(np.ceil((lo + 1) * resolution / 2 - 0.5), 0, resolution).astype(int)
        b = np.clip(np.floor((hi + 1) * resolution / 2 - 0.5) + 1, 0, resolution).astype(int)
        vol[a[0] : b[0], a[1] : b[1], a[2] : b[2]] = True
    return vol


def resample(vol: np.ndarray, resolution: int) -> np.ndarray:
    """A cubic bool grid at another resolution: max-pooling when shrinking by an integer factor
    (thin parts survive), nearest cell centre otherwise."""
    n = vol.shape[0]
    if n == resolution:
        return vol
    if n > resolution and n % resolution == 0:
        f = n // resolution
        return vol.reshape(resolution, f, resolution, f, resolution, f).any(axis=(1, 3, 5))
    src = np.clip(np.floor((centres(resolution) + 1) * n / 2).astype(np.int64), 0, n - 1)
    return vol[np.ix_(src, src, src)]


def extract_mesh(vol: np.ndarray, level: float = 0.5) -> tuple[np.ndarray, np.ndarray] | None:
    """Marching cubes of a (D, H, W) grid in [-1, 1]^3 units; None when no surface crosses ``level``.

    The grid is padded by one empty voxel so that shapes touching the border still close.
    """
    from skimage.measure import marching_cubes

    vol = np.asarray(vol, dtype=np.float32)
    if not (vol.max(initial=0.0) > level):
        return None
    padded = np.pad(vol, 1, mode="constant", constant_values=0.0)
    shape = np.array(vol.shape, dtype=np.float64)
    verts, faces, _, _ = marching_cubes(padded, level=level, spacing=tuple(2.0 / shape))
    # padded index 1 is voxel 0, whose centre is at -1 + 1/R
    verts = verts - 1.0 / shape
    verts = verts - 1.0
    if len(faces) == 0:
        return None
    # skimage winds faces so that normals point towards higher values (inwards here): flip them
    return verts.astype(np.float64), np.ascontiguousarray(faces[:, ::-1]).astype(np.int64)

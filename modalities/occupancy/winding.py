"""Inside/outside for meshes with holes: the generalized winding number (Jacobson et al. 2013).

``w(p) = Σ_triangles Ω(p) / 4π``, Ω the signed solid angle of a triangle seen from ``p`` (Van
Oosterom & Strackee 1983). For a closed, outward-oriented surface ``w`` is 1 inside and 0
outside; a hole only blurs it near the hole, so ``w > 0.5`` is a robust inside test.

Summing every triangle at every voxel centre costs F·R³ solid angles. It is exact, and cheaper, to
close the surface S with a *cap* C (a cone from a point of each part to that part's boundary
edges, reversed): S + C has no boundary, so its winding number is the integer count of signed ray
crossings (fast, see ``voxelize``), and ``w_S = w_{S+C} - w_C`` needs solid angles of the cap's
few triangles only.
"""
from __future__ import annotations

import math

import numpy as np
import trimesh

# (point, triangle) pairs evaluated at once: small blocks stay in cache (about 25 MB of temporaries)
_PAIRS = 1 << 16


def winding_numbers(triangles: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Generalized winding number at ``points`` (Q, 3) of the triangles (F, 3 corners, 3), float64."""
    corners = np.asarray(triangles, dtype=np.float64).reshape(-1, 3, 3)
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    out = np.zeros(len(pts))
    if len(corners) == 0:
        return out
    per_t = min(len(corners), _PAIRS)
    per_q = max(1, _PAIRS // per_t)
    for t in range(0, len(corners), per_t):
        T = np.ascontiguousarray(corners[t : t + per_t].transpose(1, 2, 0))  # (corner, axis, F)
        for s in range(0, len(pts), per_q):
            p = pts[s : s + per_q, :, None]
            (ax, ay, az), (bx, by, bz), (cx, cy, cz) = (T[i][:, None, :] - p.transpose(1, 0, 2) for i in range(3))
            la = np.sqrt(ax * ax + ay * ay + az * az)
            lb = np.sqrt(bx * bx + by * by + bz * bz)
            lc = np.sqrt(cx * cx + cy * cy + cz * cz)
            det = ax * (by * cz - bz * cy) + ay * (bz * cx - bx * cz) + az * (bx * cy - by * cx)
            den = (la * lb * lc + (ax * bx + ay * by + az * bz) * lc + (bx * cx + by * cy + bz * cz) * la
                   + (cx * ax + cy * ay + cz * az) * lb)
            # tan(Ω/2) = det / den; arctan2 keeps the quadrant, so Ω/2 = arctan2(det, den)
            out[s : s + per_q] += np.arctan2(det, den).sum(1)
    return out / (2 * math.pi)


def oriented_with_cap(mesh: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray]:
    """(surface, cap) triangles (n, 3, 3): the surface with each connected part oriented outwards
    (consistent winding, then flipped where its capped volume is negative), and the cap closing it."""
    # coincident vertices merged first: parts then share their edges (a triangle soup becomes a surface)
    mesh = trimesh.Trimesh(np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces), process=True)
    if not mesh.is_winding_consistent:
        trimesh.repair.fix_winding(mesh)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    verts = np.asarray(mesh.vertices, dtype=np.float64)
    n_faces = len(faces)
    if n_faces == 0:
        return np.zeros((0, 3, 3)), np.zeros((0, 3, 3))
    body = trimesh.graph.connected_component_labels(mesh.face_adjacency, node_count=n_faces)
    n_bodies = int(body.max()) + 1 if n_faces else 0

    # the boundary as a chain: every directed face edge adds +1 to (lo, hi) or -1 (hi -> lo), per part
    edges = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    lo, hi = edges.min(1), edges.max(1)
    sign = np.where(edges[:, 0] < edges[:, 1], 1, -1)
    keys, inverse = np.unique(np.stack([np.repeat(body, 3), lo, hi], 1), axis=0, return_inverse=True)
    net = np.bincount(inverse.reshape(-1), weights=sign, minlength=len(keys)).astype(np.int64)
    edge_body, a, b, net = keys[net != 0, 0], keys[net != 0, 1], keys[net != 0, 2], net[net != 0]

    # the cone's apex of each part: the mean of its boundary vertices (of all its corners if closed)
    tri = verts[faces]
    apex = np.zeros((n_bodies, 3))
    np.add.at(apex, body, tri.sum(1))
    apex /= 3 * np.bincount(body, minlength=n_bodies)[:, None]
    rim = np.zeros((n_bodies, 3))
    np.add.at(rim, edge_body, verts[a] + verts[b])
    count = 2 * np.bincount(edge_body, minlength=n_bodies)
    apex = np.where(count[:, None] > 0, rim / np.maximum(count, 1)[:, None], apex)

    # volume enclosed with the cap (the cone from the apex adds none): negative = inside out
    rel = tri - apex[body][:, None, :]
    volume = np.bincount(body, weights=np.einsum("ij,ij->i", rel[:, 0], np.cross(rel[:, 1], rel[:, 2])),
                         minlength=n_bodies)
    # a flat part (a sheet, a lone triangle) encloses nothing either way: it keeps its orientation
    scale = float(np.ptp(verts, axis=0).max()) ** 3 if len(verts) else 0.0
    flip = volume < -1e-9 * scale
    tri = np.where(flip[body][:, None, None], tri[:, ::-1], tri)
    net = np.where(flip[edge_body], -net, net)

    # net > 0: the surface runs a -> b, so the cap runs b -> a: triangle (apex, b, a), |net| times
    first, second = np.where(net > 0, b, a), np.where(net > 0, a, b)
    reps = np.abs(net)
    cap = np.stack([np.repeat(apex[edge_body], reps, 0), np.repeat(verts[first], reps, 0),
                    np.repeat(verts[second], reps, 0)], 1)
    return tri, cap

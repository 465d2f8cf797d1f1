"""Occupancy outputs: marching-cubes meshes (PLY/OBJ/GLB through trimesh) and a preview PNG drawn
without a display; each batch says how many connected components each shape has, and which have
no surface at all (no mesh is written for those, and the preview tile says so).

The preview is an orthographic, depth-shaded splat of the surface voxels seen from an oblique
view with +y up (ShapeNet's convention, and the built-in chairs'): pure numpy, so it runs
headless in CI and stays in bounded memory at 128³.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import trimesh
from scipy import ndimage

from inrkit.io import atomic_write_bytes

from ..common import labelled_tile, write_png
from .voxelize import extract_mesh

MESH_FILE_TYPES = ("ply", "obj", "glb")  # what trimesh writes for us; "+" joins several, "none" writes none
# view: turned 35° about +y (so two sides show), then tilted 25° down onto the top
_AZIMUTH, _ELEVATION = np.radians(35.0), np.radians(25.0)
_LIGHT = np.array([-0.4, 0.6, 0.7]) / np.linalg.norm([-0.4, 0.6, 0.7])
_COLOUR = np.array([0.55, 0.68, 0.85])
NO_SURFACE = "no surface: every occupancy is <= 0.5, so no mesh is written"


def mesh_formats(spec: str) -> tuple[str, ...]:
    """``ply``, ``obj``, ``glb``, ``ply+obj``... or ``none`` → the file types; a ValueError names the known ones."""
    if spec == "none":
        return ()
    parts = tuple(p.strip().lower() for p in str(spec).split("+"))
    bad = [p for p in parts if p not in MESH_FILE_TYPES]
    if bad or not parts:
        raise ValueError(f"mesh format must be one of {', '.join(MESH_FILE_TYPES)} (joined with '+') or none, got '{spec}'")
    return parts


def write_meshes(vols: np.ndarray, out_dir: Path, stem: str, formats: tuple[str, ...],
                 transforms: list | None = None) -> tuple[list[Path], list[dict]]:
    """One mesh file per item and format: ``{stem}_{i:03d}.{fmt}``; an item with no surface writes
    nothing. ``transforms``: per item ``(centre, scale)`` back to the source's units, or None.
    Returns the paths and, per item, ``{"item", "surface", "components"}``."""
    paths, info = [], []
    for i, vol in enumerate(vols):
        mesh = extract_mesh(vol)
        if mesh is None:
            info.append({"item": i, "surface": False, "components": 0})
            continue
        verts = mesh[0]
        if transforms is not None and i < len(transforms) and transforms[i] is not None:
            centre, scale = transforms[i]
            verts = verts * float(scale) + np.asarray(centre, dtype=np.float64)
        tm = trimesh.Trimesh(vertices=verts, faces=mesh[1], process=False)
        info.append({"item": i, "surface": True, "components": int(tm.body_count)})
        for fmt in formats:
            path = Path(out_dir) / f"{stem}_{i:03d}.{fmt}"
            data = tm.export(file_type=fmt)  # bytes (ply, glb) or text (obj), written atomically
            atomic_write_bytes(path, data.encode("utf-8") if isinstance(data, str) else data)
            paths.append(path)
    return paths, info


def say_meshes(stem: str, info: list[dict], labels=None) -> str:
    """The line a user reads about a batch of shapes: components per item, and which have no surface."""
    parts = []
    for d in info:
        name = str(labels[d["item"]]) if labels is not None and d["item"] < len(labels) else f"item {d['item']}"
        parts.append(f"{name}: {d['components']} connected component{'s' * (d['components'] != 1)}"
                     if d["surface"] else f"{name}: {NO_SURFACE}")
    return f"{stem}: " + "; ".join(parts)


def _view_rotation() -> np.ndarray:
    ca, sa, ce, se = np.cos(_AZIMUTH), np.sin(_AZIMUTH), np.cos(_ELEVATION), np.sin(_ELEVATION)
    about_y = np.array([[ca, 0, sa], [0, 1, 0], [-sa, 0, ca]])
    about_x = np.array([[1, 0, 0], [0, ce, -se], [0, se, ce]])
    return about_x @ about_y


def _cube_extent() -> float:
    corners = np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1], indexing="ij")).reshape(3, -1).T
    return float(np.abs(corners @ _view_rotation()[:2].T).max()) * 1.02


_EXTENT = _cube_extent()


def preview(vol: np.ndarray, size: int = 128) -> np.ndarray:
    """(X, Y, Z) occupancy → (size, size, 3) uint8 image; white where empty."""
    occ = np.asarray(vol) > 0.5
    img = np.ones((size, size, 3), dtype=np.float64)
    if not occ.any():
        return (img * 255).astype(np.uint8)
    # only voxels with an empty face-neighbour can be seen
    shell = occ & ~ndimage.binary_erosion(occ, border_value=0)
    idx = np.argwhere(shell)
    shape = np.array(occ.shape, dtype=np.float64)
    pts = (idx + 0.5) * (2.0 / shape) - 1.0
    cam = pts @ _view_rotation().T  # x right, y up, z towards the viewer
    extent = _EXTENT  # the whole cube fits, so all items share one scale
    px = size / (2 * extent)
    # footprint: about one projected voxel, so that coarse grids render without gaps
    k = int(np.floor(0.8 * (2.0 / shape.max()) * px))
    offs = np.arange(-k, k + 1)
    u = np.floor((cam[:, 0] + extent) * px).astype(np.int64)
    v = np.floor((extent - cam[:, 1]) * px).astype(np.int64)
    du, dv = np.meshgrid(offs, offs, indexing="ij")
    uu = (u[:, None] + du.reshape(1, -1)).reshape(-1)
    vv = (v[:, None] + dv.reshape(1, -1)).reshape(-1)
    depth = np.repeat(-cam[:, 2], du.size)
    ok = (uu >= 0) & (uu < size) & (vv >= 0) & (vv < size)
    flat, depth = vv[ok] * size + uu[ok], depth[ok]
    # z-buffer: per pixel keep the nearest sample
    order = np.lexsort((depth, flat))
    first = np.unique(flat[order], return_index=True)[1]
    zbuf = np.full(size * size, np.inf)
    zbuf[flat[order][first]] = depth[order][first]
    zbuf = zbuf.reshape(size, size)
    hit = np.isfinite(zbuf)
    light = _shade(_smooth(zbuf, hit, 0.5 * (2.0 / shape.max()) * px), hit, 1.0 / px)
    near, far = zbuf[hit].min(), zbuf[hit].max()
    fade = 1.0 - 0.35 * (zbuf[hit] - near) / max(far - near, 1e-9)
    img[hit] = (light[hit] * fade)[:, None] * _COLOUR[None]
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def _smooth(zbuf: np.ndarray, hit: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of the depth over covered pixels only, so voxel steps do not speckle the shading."""
    if sigma < 0.5:
        return zbuf
    w = ndimage.gaussian_filter(hit.astype(np.float64), sigma)
    z = ndimage.gaussian_filter(np.where(hit, zbuf, 0.0), sigma)
    return np.where(hit, z / np.maximum(w, 1e-12), zbuf)


def _shade(zbuf: np.ndarray, hit: np.ndarray, step: float) -> np.ndarray:
    """Lambert shading from normals of the depth map; silhouette neighbours count as flat."""
    z = np.where(hit, zbuf, 0.0)
    pad = np.pad(z, 1, mode="edge")
    padhit = np.pad(hit, 1, mode="constant", constant_values=False)

    def neighbour(dy: int, dx: int) -> np.ndarray:
        sl = (slice(1 + dy, 1 + dy + z.shape[0]), slice(1 + dx, 1 + dx + z.shape[1]))
        return np.where(padhit[sl], pad[sl], z)

    gx = (neighbour(0, 1) - neighbour(0, -1)) / (2 * step)
    gy = (neighbour(-1, 0) - neighbour(1, 0)) / (2 * step)  # image rows grow downwards
    # depth grows away from the viewer, so the normal is (dz/dx, dz/dy, 1) up to sign
    n = np.stack([gx, gy, np.ones_like(z)], -1)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    return 0.3 + 0.7 * np.clip(n @ _LIGHT, 0, 1)


def preview_resolution(resolution: int) -> int:
    """Voxels per side to decode a shape at for its preview: at least 64, so surfaces shade smoothly."""
    return max(int(resolution), 64)


def render_occupancy(grids: torch.Tensor, out_dir: Path, stem: str, mesh_format: str = "ply", size: int = 256,
                     labels=None, preview_grids: torch.Tensor | None = None, transforms: list | None = None,
                     log=None) -> list[Path]:
    """(B, 1, D, H, W) model-space grids → meshes per item plus ``{stem}.png`` (one shaded view
    per item, drawn from ``preview_grids`` when given: the same shapes decoded finer), each tile
    labelled, an item without a surface marked so; the line :func:`say_meshes` writes goes to
    ``log`` (stderr by default). Returns the paths written."""
    import sys

    if grids.dim() != 5 or grids.shape[1] != 1:
        raise ValueError(f"expected (B, 1, D, H, W) occupancy grids, got {tuple(grids.shape)}")
    formats = mesh_formats(mesh_format)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    vols = grids.detach().float().cpu().numpy()[:, 0]
    paths, info = write_meshes(vols, out_dir, stem, formats, transforms)
    view = vols if preview_grids is None else preview_grids.detach().float().cpu().numpy()[:, 0]
    names = [str(labels[i]) if labels is not None and i < len(labels) else f"item {i}" for i in range(len(vols))]
    titles = [n if d["surface"] else f"{n} (no surface)" for n, d in zip(names, info)]
    images = np.stack([preview(v, size) for v in view])
    paths.append(write_png(labelled_tile(images, titles), out_dir / f"{stem}.png"))
    (log or (lambda line: print(line, file=sys.stderr)))(say_meshes(stem, info, names))
    return paths

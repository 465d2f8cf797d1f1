"""Occupancy outputs: marching-cubes meshes (PLY/OBJ) and a preview PNG drawn without a display.

The preview is an orthographic, depth-shaded splat of the surface voxels seen from an oblique
view with +y up (ShapeNet's convention, and the built-in chairs'): pure numpy, so it runs
headless in CI and stays in bounded memory at 128³.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
import trimesh
from scipy import ndimage

from inrkit.errors import InrkitWarning

from ..common import tile, write_png
from .voxelize import extract_mesh

MESH_FORMATS = {"ply": ("ply",), "obj": ("obj",), "ply+obj": ("ply", "obj"), "none": ()}
# view: turned 35° about +y (so two sides show), then tilted 25° down onto the top
_AZIMUTH, _ELEVATION = np.radians(35.0), np.radians(25.0)
_LIGHT = np.array([-0.4, 0.6, 0.7]) / np.linalg.norm([-0.4, 0.6, 0.7])
_COLOUR = np.array([0.55, 0.68, 0.85])


def write_meshes(vols: np.ndarray, out_dir: Path, stem: str, formats: tuple[str, ...]) -> list[Path]:
    """One mesh file per item and format: ``{stem}_{i:03d}.{fmt}``; an item with no surface (no
    voxel occupied) writes none, and an :class:`InrkitWarning` names it."""
    paths, empty = [], []
    for i, vol in enumerate(vols):
        mesh = extract_mesh(vol)
        if mesh is None:
            empty.append(i)
            continue
        tm = trimesh.Trimesh(vertices=mesh[0], faces=mesh[1], process=False)
        for fmt in formats:
            path = Path(out_dir) / f"{stem}_{i:03d}.{fmt}"
            tm.export(path, file_type=fmt)
            paths.append(path)
    if empty and formats:
        names = ", ".join(f"{stem}_{i:03d}" for i in empty)
        warnings.warn(f"{len(empty)} of {len(vols)} item(s) produced no surface (no voxel with occupancy > 0.5),"
                      f" so no mesh was written for {names} in {out_dir}", InrkitWarning, stacklevel=2)
    return paths


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


def render_occupancy(grids: torch.Tensor, out_dir: Path, stem: str, mesh_format: str = "ply", size: int = 128) -> list[Path]:
    """(B, 1, D, H, W) model-space grids → meshes per item plus ``{stem}.png``; the paths written."""
    if grids.dim() != 5 or grids.shape[1] != 1:
        raise ValueError(f"expected (B, 1, D, H, W) occupancy grids, got {tuple(grids.shape)}")
    if mesh_format not in MESH_FORMATS:
        raise ValueError(f"mesh_format must be one of {', '.join(MESH_FORMATS)}, got '{mesh_format}'")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    vols = grids.detach().float().cpu().numpy()[:, 0]
    paths = write_meshes(vols, out_dir, stem, MESH_FORMATS[mesh_format])
    images = np.stack([preview(v, size) for v in vols])
    paths.append(write_png(tile(images), out_dir / f"{stem}.png"))
    return paths

"""Occupancy metrics between predicted probabilities and target occupancies, per item.

All three threshold the prediction at 0.5 (occupied where p > 0.5):

- ``accuracy``: fraction of *all* voxels classified right, as the papers report it (empty space
  dominates it: an all-empty guess already scores ~0.9 on chairs).
- ``iou``: |P ∩ T| / |P ∪ T| over occupied voxels only, so empty space cannot inflate it; two
  empty shapes have IoU 1.
- ``chamfer``: symmetric Chamfer distance between points sampled uniformly (by area, seeded) on the
  marching-cubes meshes of the two thresholded grids, in squared units of the [-1, 1] cube:
  mean over P of the squared distance to the nearest T point, plus the same from T to P (the
  pytorch3d ``chamfer_distance`` convention). ``inf`` when exactly one of the two shapes is empty;
  0 when both are.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree

from .voxelize import extract_mesh


def occupancy_metrics(pred: torch.Tensor, target: torch.Tensor, n_points: int = 2048, seed: int = 0) -> dict[str, torch.Tensor]:
    """(B, 1, D, H, W) probabilities and targets → name → (B,) float32 tensors."""
    if pred.shape != target.shape or pred.dim() != 5:
        raise ValueError(f"expected two (B, 1, D, H, W) grids of one shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    p = pred.detach().float().flatten(1) > 0.5
    t = target.detach().float().flatten(1) > 0.5
    accuracy = (p == t).float().mean(1)
    inter = (p & t).sum(1).double()
    union = (p | t).sum(1).double()
    iou = torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union)).float()
    pv = (pred.detach().float() > 0.5).cpu().numpy()
    tv = (target.detach().float() > 0.5).cpu().numpy()
    chamfer = torch.tensor([chamfer_distance(a[0], b[0], n_points, seed) for a, b in zip(pv, tv)], dtype=torch.float32)
    return {"accuracy": accuracy.cpu(), "iou": iou.cpu(), "chamfer": chamfer}


def surface_points(vol: np.ndarray, n: int, seed: int = 0) -> np.ndarray | None:
    """(n, 3) points uniform by area on the marching-cubes surface of a grid; None if empty."""
    mesh = extract_mesh(vol)
    if mesh is None:
        return None
    verts, faces = mesh
    tri = verts[faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(faces), size=n, p=area / area.sum())
    r1, r2 = rng.random((2, n, 1))
    s = np.sqrt(r1)  # uniform over a triangle's area, not clustered at a corner
    a, b, c = tri[pick, 0], tri[pick, 1], tri[pick, 2]
    return (1 - s) * a + s * (1 - r2) * b + s * r2 * c


def chamfer_distance(pred: np.ndarray, target: np.ndarray, n_points: int = 2048, seed: int = 0) -> float:
    """Symmetric squared-L2 Chamfer distance between two (D, H, W) occupancy grids (see module doc)."""
    a = surface_points(pred, n_points, seed)
    b = surface_points(target, n_points, seed)
    if a is None and b is None:
        return 0.0
    if a is None or b is None:
        return float("inf")
    d_ab, _ = cKDTree(b).query(a)
    d_ba, _ = cKDTree(a).query(b)
    return float(np.mean(d_ab**2) + np.mean(d_ba**2))

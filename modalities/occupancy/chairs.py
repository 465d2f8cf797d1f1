"""Built-in procedural chairs: seat, back, legs (or a pedestal), optional arms and stretchers.

Every part is an axis-aligned box of random proportions in [-1, 1]^3 with +y up and the back at
-z; item ``i`` is drawn from ``numpy.random.default_rng([seed, i])``, so an item does not depend
on ``n_items`` or on the split. Parts are never thinner than one voxel, so none vanish at the
domain's resolution.
"""
from __future__ import annotations

import numpy as np
import pydantic
import torch
from torch.utils.data import Dataset

from inrkit.registry import datasets

from ..common import SplitFields, select_split
from .voxelize import boxes_to_voxels

FLOOR, CEILING = -0.95, 0.95


def chair_boxes(rng: np.random.Generator, min_thickness: float = 0.0) -> np.ndarray:
    """(n, 2, 3) boxes (lower, upper corners) of one random chair."""
    def thick(lo: float, hi: float) -> float:
        return max(rng.uniform(lo, hi), min_thickness)

    boxes = []

    def box(x0, x1, y0, y1, z0, z1):
        boxes.append(((x0, y0, z0), (x1, y1, z1)))

    hw, hd = rng.uniform(0.45, 0.8), rng.uniform(0.4, 0.75)  # seat half-width (x), half-depth (z)
    top = rng.uniform(-0.25, 0.1)  # seat top
    seat = thick(0.07, 0.16)
    bottom = top - seat
    box(-hw, hw, bottom, top, -hd, hd)

    back_t = thick(0.07, 0.14)
    back_top = min(CEILING, top + rng.uniform(0.5, 1.0))
    back_hw = hw * rng.uniform(0.75, 1.0)
    z0, z1 = -hd, -hd + back_t
    if rng.random() < 0.6:  # solid panel
        box(-back_hw, back_hw, top, back_top, z0, z1)
    else:  # frame: two posts, a top rail and vertical slats
        post, rail = thick(0.07, 0.12), thick(0.07, 0.14)
        box(-back_hw, -back_hw + post, top, back_top, z0, z1)
        box(back_hw - post, back_hw, top, back_top, z0, z1)
        box(-back_hw, back_hw, back_top - rail, back_top, z0, z1)
        n_slats = int(rng.integers(1, 4))
        slat = thick(0.06, 0.1)
        for x in np.linspace(-back_hw, back_hw, n_slats + 2)[1:-1]:
            box(x - slat / 2, x + slat / 2, top, back_top, z0, z1)

    if rng.random() < 0.8:  # four legs, possibly tucked in from the corners
        leg = thick(0.07, 0.15)
        inset = rng.uniform(0.0, 0.12)
        xs, zs = hw - inset, hd - inset
        for sx in (-1, 1):
            for sz in (-1, 1):
                x, z = sx * xs, sz * zs
                box(min(x, x - sx * leg), max(x, x - sx * leg), FLOOR, bottom, min(z, z - sz * leg), max(z, z - sz * leg))
        if rng.random() < 0.35:  # side stretchers between front and back legs
            y = rng.uniform(FLOOR + 0.1, bottom - 0.1)
            s = thick(0.06, 0.1)
            for sx in (-1, 1):
                x = sx * (xs - leg / 2)
                box(x - s / 2, x + s / 2, y, y + s, -zs, zs)
    else:  # office-style pedestal on a cross base
        col = thick(0.1, 0.22)
        box(-col / 2, col / 2, FLOOR, bottom, -col / 2, col / 2)
        foot, reach = thick(0.07, 0.12), rng.uniform(0.5, 0.85)
        box(-reach, reach, FLOOR, FLOOR + foot, -foot / 2, foot / 2)
        box(-foot / 2, foot / 2, FLOOR, FLOOR + foot, -reach, reach)

    if rng.random() < 0.35:  # arms: a rest on each side with a front post
        arm = thick(0.07, 0.13)
        height = min(back_top, top + rng.uniform(0.2, 0.4))
        front = hd * rng.uniform(0.6, 1.0)
        for sx in (-1, 1):
            x0, x1 = sorted((sx * hw, sx * (hw - arm)))
            box(x0, x1, height - arm, height, -hd, front)
            box(x0, x1, top, height, front - arm, front)

    return np.clip(np.asarray(boxes, dtype=np.float64), -0.97, 0.97)


def chair(seed: int, index: int, resolution: int) -> np.ndarray:
    """Item ``index`` of the chairs drawn with ``seed``: (R, R, R) bool, axes (x, y, z)."""
    rng = np.random.default_rng([seed, index])
    # 1.05 voxels: every part then covers at least one voxel centre
    return boxes_to_voxels(chair_boxes(rng, min_thickness=1.05 * 2.0 / resolution), resolution)


class ChairsConfig(SplitFields):
    n_items: int = pydantic.Field(64, ge=1, description="chairs generated (then split)")


@datasets.register("chairs", config=ChairsConfig, description="built-in: procedural chairs (seat, back, legs, optional arms), voxelised")
class Chairs(Dataset):
    def __init__(self, config: ChairsConfig, domain):
        self.config, self.domain = config, domain
        self.ids = select_split(config.n_items, config)
        self.meta = {
            "source": "procedural chairs (inrkit_modalities.occupancy.chairs)",
            "split": config.split,
            "n_items": len(self.ids),
            "seed": config.seed,
            "resolution": int(domain.grid_shape[0]),
            "axes": "x, y (up), z (back at -z)",
        }

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> torch.Tensor:
        vol = chair(self.config.seed, int(self.ids[i]), int(self.domain.grid_shape[0]))
        return torch.from_numpy(vol.astype(np.float32))[None]

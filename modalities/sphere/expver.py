"""ERA5 beside ERA5T: an ``expver`` dimension whose values split the time steps between them.

CDS NetCDF files that reach the last few months carry ``expver`` 1 (ERA5) and 5 (ERA5T, the
preliminary data) as a dimension of size 2; each time step holds values under one of them and
NaN under the other. Such a variable is one series: the values are merged, step by step and
point by point. Two expvers holding different values at one point are an error (that is a
choice only the user can make, with ``data.select``).
"""
from __future__ import annotations

import numpy as np

from inrkit.errors import DataError

MERGED_DIMS = ("expver",)


def merge_expver(block: np.ndarray, labels: list[str], where: str, dim: str = "expver") -> np.ndarray:
    """(t, n_expver, lat, lon) → (t, lat, lon): at each point the value of the one expver that has it
    (NaN where none has: reported as missing data by the caller). ``labels``: the expver values as
    YAML, for the message."""
    finite = np.isfinite(block)
    several = finite.sum(1) > 1
    if several.any():
        filled = np.where(finite, block, np.nan)
        spread = np.nanmax(filled, 1) - np.nanmin(filled, 1)
        bad = several & (spread > 1e-6 * np.maximum(1.0, np.nanmax(np.abs(filled), 1)))
        if bad.any():
            names = ", ".join(labels)
            raise DataError(f"{where}: {dim} {names} hold different values for {int(bad.sum())} point(s) of the same"
                            f" time step; choose one with --set 'data.select={{{dim}: {labels[0]}}}'")
    out = np.full(block.shape[:1] + block.shape[2:], np.nan)
    for e in range(block.shape[1] - 1, -1, -1):
        out = np.where(finite[:, e], block[:, e], out)
    return out

"""Moving lat/lon fields between grids: canonical ordering, then bilinear in latitude, periodic in longitude.

Files store latitudes in either order and longitudes on 0..360 or -180..180; a
:class:`Regridder` sorts the source (latitude ascending, longitude wrapped to [0, 360) and
ascending, duplicates such as 0 and 360 dropped) and interpolates onto any target grid.
Targets outside the source's latitude span (a pole row from cell-centred data) take the
nearest row; longitude wraps around, so there is never an edge.
"""
from __future__ import annotations

import numpy as np


def canonical_order(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Index arrays and coordinates that put a (.., lat, lon) field in canonical order."""
    lat = np.asarray(lat, np.float64).ravel()
    lon = np.mod(np.asarray(lon, np.float64).ravel(), 360.0)
    lat_idx = np.argsort(lat, kind="stable")
    lon_sorted, lon_idx = np.unique(lon, return_index=True)
    return lat_idx, lon_idx, lat[lat_idx], lon_sorted


def _weights(src: np.ndarray, dst: np.ndarray, period: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For ascending ``src``: indices i0, i1 and weight w of i1 so that f(dst) ≈ (1-w) f[i0] + w f[i1]."""
    n = len(src)
    if period is not None:
        # one wrapped copy on each side turns periodic interpolation into the ordinary kind
        ext = np.concatenate([[src[-1] - period], src, [src[0] + period]])
        x = np.mod(dst, period)
        j = np.clip(np.searchsorted(ext, x, side="right") - 1, 0, n)
        w = (x - ext[j]) / (ext[j + 1] - ext[j])
        return (j - 1) % n, j % n, w
    if n == 1:
        zeros = np.zeros(len(dst), dtype=np.int64)
        return zeros, zeros, np.zeros(len(dst))
    x = np.clip(dst, src[0], src[-1])
    j = np.clip(np.searchsorted(src, x, side="right") - 1, 0, n - 2)
    w = (x - src[j]) / (src[j + 1] - src[j])
    return j, j + 1, w


class Regridder:
    """Maps (..., n_lat_src, n_lon_src) fields on one grid to (..., n_lat_dst, n_lon_dst) on another."""

    def __init__(self, src_lat, src_lon, dst_lat, dst_lon, atol: float = 1e-6):
        self.lat_idx, self.lon_idx, slat, slon = canonical_order(src_lat, src_lon)
        if len(slat) > 1 and np.any(np.diff(slat) <= 0):
            raise ValueError("latitudes contain duplicates")
        dlat = np.asarray(dst_lat, np.float64).ravel()
        dlon = np.mod(np.asarray(dst_lon, np.float64).ravel(), 360.0)
        self.src_shape = (len(np.asarray(src_lat).ravel()), len(np.asarray(src_lon).ravel()))
        self.dst_shape = (len(dlat), len(dlon))
        same_lat = len(slat) == len(dlat) and np.allclose(np.sort(dlat), slat, atol=atol, rtol=0)
        same_lon = len(slon) == len(dlon) and np.allclose(np.sort(dlon), slon, atol=atol, rtol=0)
        # exact matches are a pure reordering: no interpolation blur on data already on the grid
        self.lat_map = np.searchsorted(slat, dlat - atol) if same_lat else None
        self.lon_map = np.searchsorted(slon, dlon - atol) if same_lon else None
        self.lat_w = None if same_lat else _weights(slat, dlat, None)
        self.lon_w = None if same_lon else _weights(slon, dlon, 360.0)

    @property
    def identity(self) -> bool:
        return self.lat_w is None and self.lon_w is None

    def __call__(self, values: np.ndarray) -> np.ndarray:
        v = np.asarray(values)
        if v.shape[-2:] != self.src_shape:
            raise ValueError(f"field of shape {v.shape[-2:]} does not match the source grid {self.src_shape}")
        v = v[..., self.lat_idx, :][..., self.lon_idx]
        if self.lat_w is None:
            v = v[..., self.lat_map, :]
        else:
            i0, i1, w = self.lat_w
            v = v[..., i0, :] * (1 - w)[:, None] + v[..., i1, :] * w[:, None]
        if self.lon_w is None:
            v = v[..., self.lon_map]
        else:
            i0, i1, w = self.lon_w
            v = v[..., i0] * (1 - w) + v[..., i1] * w
        return v


def regrid(values: np.ndarray, src_lat, src_lon, dst_lat, dst_lon) -> np.ndarray:
    """One-off form of :class:`Regridder`."""
    return Regridder(src_lat, src_lon, dst_lat, dst_lon)(values)

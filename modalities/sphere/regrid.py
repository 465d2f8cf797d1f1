"""Moving lat/lon fields between grids: canonical ordering, then bilinear or conservative remapping.

Files store latitudes in either order and longitudes on 0..360 or -180..180; both regridders
sort the source (latitude ascending, longitude wrapped to [0, 360) and ascending, duplicates
such as 0 and 360 dropped) and map onto any target grid.

* :class:`Regridder` (``bilinear``): interpolation in latitude, periodic in longitude. Targets
  outside the source's latitude span (a pole row from cell-centred data) take the nearest row.
  Cheap and smooth, but coarsening by a large factor aliases: each target reads 4 points.
* :class:`ConservativeRegridder` (``conservative``, first order, as WeatherBench2 coarsens):
  each target cell is the area-weighted mean of the source cells it overlaps. Cells have edges
  halfway between neighbouring centres, the outermost at ±90° (the convention of
  :func:`inrkit_modalities.sphere.metrics.latitude_weights`); areas are Δ(sin φ)·Δλ, so the weights
  separate into a latitude and a longitude matrix and the area-weighted global mean is kept.
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


def _lat_edges(lat: np.ndarray) -> np.ndarray:
    """Edges of cells centred on ascending ``lat``: midpoints, the outermost at ±90°."""
    return np.clip(np.concatenate([[-90.0], (lat[:-1] + lat[1:]) / 2, [90.0]]), -90.0, 90.0)


def _lon_edges(lon: np.ndarray) -> np.ndarray:
    """Edges of cells centred on ascending ``lon`` in [0, 360), periodic: n + 1 values, last = first + 360."""
    nxt = np.concatenate([lon[1:], [lon[0] + 360.0]])
    upper = (lon + nxt) / 2
    return np.concatenate([[upper[-1] - 360.0], upper])


def _overlap(dst: np.ndarray, src: np.ndarray, period: float | None) -> np.ndarray:
    """(n_dst, n_src) lengths of overlap between the intervals of two edge arrays."""
    lo, hi = dst[:-1, None], dst[1:, None]
    out = np.zeros((len(dst) - 1, len(src) - 1))
    for shift in ((-period, 0.0, period) if period else (0.0,)):
        out += np.clip(np.minimum(hi, src[None, 1:] + shift) - np.maximum(lo, src[None, :-1] + shift), 0.0, None)
    return out


class ConservativeRegridder:
    """First-order conservative remapping of (..., n_lat_src, n_lon_src) fields; see the module text."""

    def __init__(self, src_lat, src_lon, dst_lat, dst_lon):
        self.lat_idx, self.lon_idx, slat, slon = canonical_order(src_lat, src_lon)
        if len(slat) > 1 and np.any(np.diff(slat) <= 0):
            raise ValueError("latitudes contain duplicates")
        self.src_shape = (len(np.asarray(src_lat).ravel()), len(np.asarray(src_lon).ravel()))
        dlat = np.asarray(dst_lat, np.float64).ravel()
        dlon = np.mod(np.asarray(dst_lon, np.float64).ravel(), 360.0)
        self.dst_shape = (len(dlat), len(dlon))
        # targets in any order: build on the sorted target grid, then put rows/columns back
        lat_order, lon_order = np.argsort(dlat, kind="stable"), np.argsort(dlon, kind="stable")
        if np.any(np.diff(dlat[lat_order]) <= 0) or np.any(np.diff(dlon[lon_order]) <= 0):
            raise ValueError("target grid has duplicate latitudes or longitudes")
        sin = lambda edges: np.sin(np.deg2rad(edges))  # noqa: E731
        w_lat = _overlap(sin(_lat_edges(dlat[lat_order])), sin(_lat_edges(slat)), None)
        w_lon = _overlap(_lon_edges(dlon[lon_order]), _lon_edges(slon), 360.0)
        self.w_lat = np.empty_like(w_lat)
        self.w_lat[lat_order] = w_lat / w_lat.sum(1, keepdims=True)
        self.w_lon = np.empty_like(w_lon)
        self.w_lon[lon_order] = w_lon / w_lon.sum(1, keepdims=True)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        v = np.asarray(values)
        if v.shape[-2:] != self.src_shape:
            raise ValueError(f"field of shape {v.shape[-2:]} does not match the source grid {self.src_shape}")
        v = v[..., self.lat_idx, :][..., self.lon_idx]
        return np.einsum("ij,...jk,lk->...il", self.w_lat, v, self.w_lon, optimize=True)


METHODS = ("bilinear", "conservative")


def make_regridder(method: str, src_lat, src_lon, dst_lat, dst_lon):
    """The regridder named by ``data.regrid``: ``bilinear`` or ``conservative``."""
    if method == "conservative":
        return ConservativeRegridder(src_lat, src_lon, dst_lat, dst_lon)
    if method == "bilinear":
        return Regridder(src_lat, src_lon, dst_lat, dst_lon)
    raise ValueError(f"unknown regrid method '{method}' (expected {' or '.join(METHODS)})")


def regrid(values: np.ndarray, src_lat, src_lon, dst_lat, dst_lon, method: str = "bilinear") -> np.ndarray:
    """One-off form of :func:`make_regridder`."""
    return make_regridder(method, src_lat, src_lon, dst_lat, dst_lon)(values)

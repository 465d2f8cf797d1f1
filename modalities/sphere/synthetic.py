"""``synthetic``: the built-in sphere data — smooth global temperature fields from random spherical harmonics."""
from __future__ import annotations

import math

import numpy as np
import pydantic
import torch

from inrkit.registry import datasets

from ..common import SplitFields, TensorDataset, select_split
from .to_domain import dataset_meta
from .units import unit_conversion


class SyntheticConfig(SplitFields):
    n_items: int = pydantic.Field(64, ge=1)
    lmax: int = pydantic.Field(8, ge=1, le=40)
    anomaly_k: float = pydantic.Field(4.0, ge=0, description="std of the anomaly field in kelvin")


def real_spherical_harmonics(lmax: int, lat_deg: np.ndarray, lon_deg: np.ndarray) -> np.ndarray:
    """Orthonormal real harmonics Y_lm, 1 <= l <= lmax, on a lat/lon grid → (n_basis, n_lat, n_lon).

    Built from scipy's associated Legendre functions (present in every scipy release) rather
    than sph_harm/sph_harm_y, whose name and argument order changed in scipy 1.15.
    """
    from scipy.special import lpmv

    mu = np.sin(np.deg2rad(np.asarray(lat_deg, np.float64)))[:, None]
    lam = np.deg2rad(np.asarray(lon_deg, np.float64))[None, :]
    basis = []
    for l in range(1, lmax + 1):
        for m in range(0, l + 1):
            norm = math.sqrt((2 * l + 1) / (4 * math.pi) * math.factorial(l - m) / math.factorial(l + m))
            p = lpmv(m, l, mu) * norm
            if m == 0:
                basis.append(np.broadcast_to(p, (mu.shape[0], lam.shape[1])))
            else:
                basis.append(math.sqrt(2) * p * np.cos(m * lam))
                basis.append(math.sqrt(2) * p * np.sin(m * lam))
    return np.stack(basis)


def synthetic_fields(indices, lat_deg: np.ndarray, lon_deg: np.ndarray, lmax: int = 8, seed: int = 0,
                     anomaly_k: float = 4.0) -> np.ndarray:
    """(len(indices), n_lat, n_lon) 2 m-temperature-like fields in kelvin, deterministic by seed.

    A zonal climate — about 300 K at the (seasonally shifted) thermal equator, about 240 K at
    the poles — plus a smooth anomaly with a red spectrum (amplitude ∝ 1/(l+1)) scaled to
    ``anomaly_k`` kelvin rms. Item k depends only on (seed, k): a larger set extends a smaller one
    and a split generates only its own items.
    """
    basis = real_spherical_harmonics(lmax, lat_deg, lon_deg)
    degrees = np.array([l for l in range(1, lmax + 1) for _ in range(2 * l + 1)], np.float64)
    amp = 1.0 / (degrees + 1.0)
    lat = np.deg2rad(np.asarray(lat_deg, np.float64))[:, None]
    out = np.empty((len(indices), len(lat_deg), len(lon_deg)), np.float64)
    for i, k in enumerate(indices):
        rng = np.random.default_rng([seed, int(k)])
        shift = np.deg2rad(rng.uniform(-10.0, 10.0))  # seasonal displacement of the thermal equator
        climate = 240.0 + 60.0 * np.cos(lat - shift) ** 2
        anomaly = np.tensordot(rng.standard_normal(len(amp)) * amp, basis, axes=1)
        anomaly *= anomaly_k / max(anomaly.std(), 1e-12)
        out[i] = climate + anomaly
    return out


@datasets.register("synthetic", config=SyntheticConfig, description="built-in: smooth global temperature fields from random spherical harmonics")
class Synthetic(TensorDataset):
    def __init__(self, config: SyntheticConfig, domain):
        self.config = config
        keep = select_split(config.n_items, config)
        kelvin = synthetic_fields(keep, domain.latitudes(), domain.longitudes(), config.lmax, config.seed, config.anomaly_k)
        convert = unit_conversion("K", domain.config.variable_units, "synthetic")
        items = domain.to_model(convert(kelvin))[:, None].astype(np.float32)
        super().__init__(torch.from_numpy(items), dataset_meta(
            domain, config, "synthetic spherical-harmonic fields",
            n_items=len(keep), lmax=config.lmax, seed=config.seed,
        ))

"""Sphere metrics, per item (B,), on model-space grids (B, 1, n_lat, n_lon) in [-1, 1].

The ERA5 literature reports PSNR on two scalings that sit 20·log10(2) ≈ 6.02 dB apart, with and
without latitude weighting; every name here says which:

* ``psnr_unit``: errors of the fields on [0, 1] (GASP's min-max scaling), peak 1:
  10·log10(1 / MSE_unit);
* ``psnr_sym``: errors of the fields on [-1, 1] with peak 1, i.e. ``-10·log10(MSE_sym)`` as
  code that trains on [-1, 1] data usually computes it: MSE_sym = 4·MSE_unit, so
  psnr_sym = psnr_unit − 20·log10(2) ≈ psnr_unit − 6.02 dB. (Putting the peak-to-peak range 2
  over [-1, 1] errors gives psnr_unit again; no third number exists.)
* ``rmse_<units>``: root mean squared error in the domain's physical units, named for them
  (:func:`~inrkit_modalities.sphere.units.rmse_name`): ``rmse_k`` for temperatures (kelvin; the
  same number in degrees Celsius), ``rmse_m_per_s`` for winds, ``rmse_mm`` for precipitation in
  mm, and so on: a table of RMSEs never says kelvin of a field that is not a temperature;
* ``*_weighted``: squared errors weighted by cell area (latitude weights with mean 1);
* ``mse``: model space, unweighted (the scale the likelihood sees).
"""
from __future__ import annotations

import numpy as np
import torch

MSE_FLOOR = 1e-10  # caps PSNR of a perfect match at 100 dB (unit scaling) instead of +inf


def latitude_weights(lat_deg) -> np.ndarray:
    """Cell-area weights (mean 1) for latitudes in any order, as WeatherBench2 computes them.

    Cell edges sit halfway between neighbouring latitudes, the outermost at ±90°; a cell's area
    is proportional to sin(upper edge) - sin(lower edge).
    """
    lat = np.asarray(lat_deg, np.float64).ravel()
    order = np.argsort(lat)
    s = lat[order]
    edges = np.clip(np.concatenate([[-90.0], (s[:-1] + s[1:]) / 2, [90.0]]), -90.0, 90.0)
    area = np.sin(np.deg2rad(edges[1:])) - np.sin(np.deg2rad(edges[:-1]))
    w = np.empty_like(area)
    w[order] = area
    return w / w.mean()


def _mean_sq(err2: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    if weights is not None:
        err2 = err2 * weights.to(err2).view(1, 1, -1, 1)
    return err2.flatten(1).mean(1)


def _psnr(mse: torch.Tensor, peak: float) -> torch.Tensor:
    return 10.0 * torch.log10(peak**2 / mse.clamp_min(MSE_FLOOR))


def sphere_metrics(pred: torch.Tensor, target: torch.Tensor, lat_weights: torch.Tensor, span: float,
                   rmse: str = "rmse_k") -> dict[str, torch.Tensor]:
    """``lat_weights`` (n_lat,) with mean 1; ``span`` = t_max - t_min in physical units; ``rmse``: the
    RMSE's name, for those units (``rmse_k`` for kelvin)."""
    err2 = (pred.float() - target.float()).pow(2)  # model space: [-1, 1]
    out = {}
    for suffix, w in (("", None), ("_weighted", lat_weights)):
        mse_unit = _mean_sq(err2, w) / 4.0  # [0, 1] errors are half the model-space ones
        out["psnr_unit" + suffix] = _psnr(mse_unit, 1.0)
        out["psnr_sym" + suffix] = _psnr(4.0 * mse_unit, 1.0)
        out[rmse + suffix] = mse_unit.sqrt() * span
    out["mse"] = _mean_sq(err2, None)
    return out

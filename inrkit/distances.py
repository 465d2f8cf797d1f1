"""Distances between two sets of items, for judging generated samples against held-out data.

Modality-free: items are any tensors (n, ...) compared flattened. ``frechet_distance`` is the
Fréchet distance between Gaussians fitted to two sets of feature vectors (FID when the features
are Inception's; here also over a model's own latents); ``nn_distances`` is the mean Euclidean
distance from each item of one set to its nearest neighbour in the other, both ways.
"""
from __future__ import annotations

import numpy as np
import torch

from .errors import DataError


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)).

    tr((S1 S2)^(1/2)) is computed as the sum of square roots of the eigenvalues of the symmetric
    PSD matrix S1^(1/2) S2 S1^(1/2) (same spectrum as S1 S2): no complex parts to discard and no
    failure on singular covariances, which scipy.linalg.sqrtm of S1 S2 has with few samples.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shape mismatch: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape}")
    evals, evecs = np.linalg.eigh((s1 + s1.T) / 2)
    root1 = (evecs * np.sqrt(np.clip(evals, 0, None))) @ evecs.T
    middle = root1 @ s2 @ root1
    cross = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * cross)


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, F) features → mean (F,) and covariance (F, F) (unbiased, as the FID literature uses)."""
    f = np.asarray(features, np.float64)
    return f.mean(0), np.atleast_2d(np.cov(f, rowvar=False))


def _flat(x: torch.Tensor, what: str) -> torch.Tensor:
    x = torch.as_tensor(x).detach().reshape(len(x), -1).double().cpu()
    if len(x) < 1 or not torch.isfinite(x).all():
        raise DataError(f"{what}: expected a non-empty set of finite items")
    return x


def set_frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """The Fréchet distance between Gaussians fitted to two sets of items (n, ...), flattened."""
    fa, fb = _flat(a, "frechet distance"), _flat(b, "frechet distance")
    if len(fa) < 2 or len(fb) < 2:
        raise DataError("frechet distance: need at least 2 items in each set")
    return frechet_distance(*feature_stats(fa.numpy()), *feature_stats(fb.numpy()))


def nn_distances(a: torch.Tensor, b: torch.Tensor, rms: bool = False, chunk: int = 1024) -> tuple[float, float]:
    """(mean over a of the distance to its nearest item of b, the same from b to a), Euclidean on
    the flattened items; ``rms`` divides by √(elements per item), giving the nearest item's RMSE."""
    fa, fb = _flat(a, "nearest-neighbour distance"), _flat(b, "nearest-neighbour distance")
    if fa.shape[1] != fb.shape[1]:
        raise DataError(f"nearest-neighbour distance: items of {fa.shape[1]} and {fb.shape[1]} elements")
    a_to_b = torch.full((len(fa),), float("inf"), dtype=torch.float64)
    b_to_a = torch.full((len(fb),), float("inf"), dtype=torch.float64)
    for i in range(0, len(fa), chunk):
        d = torch.cdist(fa[i : i + chunk], fb)
        a_to_b[i : i + chunk] = d.min(dim=1).values
        b_to_a = torch.minimum(b_to_a, d.min(dim=0).values)
    scale = fa.shape[1] ** 0.5 if rms else 1.0
    return float(a_to_b.mean() / scale), float(b_to_a.mean() / scale)

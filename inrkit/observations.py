"""Observations of one item at arbitrary coordinates: what a user's file holds, in model space.

A domain's reader (``Domain.read_observations``) turns a file into an :class:`Observations`:
coordinates in the domain's own coordinate system (pixel centres, unit-sphere xyz, voxel
centres), the values there in model space, and which channels are observed. Guided sampling
evaluates the decoded INR at exactly these coordinates, so nothing is rasterised onto a grid.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from .errors import ConfigError, DataError


FAR_OUTSIDE = 3.0  # model space: the data span ±1, so this is a full span beyond either end


@dataclass
class Observations:
    coords: torch.Tensor                   # (M, d) in the domain's coordinates
    values: torch.Tensor                   # (M, c) model space
    source: str                            # the file, for messages and records
    observed: torch.Tensor | None = None   # (M, c) bool, None = every channel of every point
    units: str = "model space"             # the physical units of ``value_scale``
    value_scale: float = 1.0               # physical units per model-space unit (RMSE in units)
    preview: torch.Tensor | None = None    # (c, *grid) model-space picture of what is seen (hidden = 0)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.coords = torch.as_tensor(self.coords, dtype=torch.float32)
        self.values = torch.as_tensor(self.values, dtype=torch.float32)
        if self.values.dim() == 1:
            self.values = self.values[:, None]
        if self.coords.dim() != 2 or self.values.dim() != 2 or self.coords.shape[0] != self.values.shape[0]:
            raise DataError(f"{self.source}: coordinates {tuple(self.coords.shape)} and values"
                            f" {tuple(self.values.shape)} do not pair up as (M, d) and (M, c)")
        if self.observed is None:
            self.observed = torch.ones(self.values.shape, dtype=torch.bool)
        self.observed = torch.as_tensor(self.observed, dtype=torch.bool).reshape(self.values.shape)
        if self.coords.shape[0] == 0 or not bool(self.observed.any()):
            raise DataError(f"{self.source}: no observed point")
        if not bool(torch.isfinite(self.coords).all()):
            raise DataError(f"{self.source}: non-finite coordinates")
        if not bool(torch.isfinite(self.values[self.observed]).all()):
            raise DataError(f"{self.source}: non-finite values (NaN or inf) among the observations")
        self.values = torch.where(self.observed, self.values, torch.zeros_like(self.values))

    def __len__(self) -> int:
        return int(self.coords.shape[0])

    def far_outside(self, bound: float = FAR_OUTSIDE) -> int:
        """How many observed values lie beyond ±``bound`` in model space, where every built-in
        domain keeps its data within ±1: a sign of wrong units (°C read as K) or a broken file."""
        return int((self.values[self.observed].abs() > bound).sum())

    def check(self, coord_dim: int, channels: int) -> "Observations":
        """Raise unless the coordinates and values fit a domain of ``coord_dim`` and ``channels``."""
        if self.coords.shape[1] != coord_dim:
            raise DataError(f"{self.source}: coordinates of dimension {self.coords.shape[1]}; the run's domain has {coord_dim}")
        if self.values.shape[1] != channels:
            raise DataError(f"{self.source}: {self.values.shape[1]} value channels; the run's domain has {channels}")
        return self

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "points": len(self), "observed_values": int(self.observed.sum()),
                "units": self.units, **self.meta}


def check_options(options: dict[str, Any], allowed: tuple[str, ...], what: str) -> dict[str, Any]:
    """The given (not None) reader options, or a one-line error naming one that ``what`` does not take."""
    given = {k: v for k, v in options.items() if v is not None}
    for k in given:
        if k not in allowed:
            known = ", ".join(f"--{a}" for a in allowed) or "none"
            raise ConfigError(f"{what} take no --{k.replace('_', '-')} (their options: {known})")
    return given

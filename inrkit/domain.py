"""The contract of a coordinate domain. Concrete domains live in plugins (``modalities``).

Shapes: B batch, N coordinates, d coordinate dims, c channels. A *grid* tensor is the
encoder's view of one item, ``(B, c, *grid_shape)``; *values* are the INR's view, ``(B, N, c)``.
Model-space values are in [-1, 1] for continuous data and {0, 1} for occupancy; the domain
knows how to turn them back into physical units.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import torch

from .errors import ConfigError
from .observations import Observations


def parse_resolution(text: str | None) -> int | tuple[int, ...] | None:
    """A user's ``--resolution``: ``R`` (each domain says what R alone means) or sizes per axis
    joined by ``x`` (``121x240``: latitude rows × longitudes on the sphere, H×W for images)."""
    if text is None:
        return None
    value = str(text).strip().lower()
    if not re.fullmatch(r"[1-9][0-9]*(x[1-9][0-9]*)*", value):
        raise ConfigError(f"--resolution: expected R or sizes joined by 'x' such as 121x240, got '{text}'")
    sizes = tuple(int(v) for v in value.split("x"))
    return sizes[0] if len(sizes) == 1 else sizes


def random_indices(n: int, points: int | None, generator: torch.Generator | None = None,
                   device: torch.device | str | None = None) -> torch.Tensor | None:
    """Flat indices of ``points`` distinct random points out of a grid of ``n``, or None when
    ``points`` is None or covers the grid (then every point is used, in grid order)."""
    if points is None or points >= n:
        return None
    if points < 1:
        raise ConfigError(f"points: expected at least 1, got {points}")
    idx = torch.randperm(n, generator=generator)[:points]
    return idx if device is None else idx.to(device)


class Domain:
    """Base class: subclasses set ``coord_dim``, ``channels``, ``grid_shape`` and implement the rest."""

    coord_dim: int
    channels: int
    grid_shape: tuple[int, ...]
    # name of the likelihood that suits the data ("gaussian" for continuous, "bernoulli" for occupancy)
    default_likelihood: str = "gaussian"
    # the ``datasets`` entry that needs no files (what a run trains on without --data)
    builtin_dataset: str

    def dataset_for(self, path: Path) -> str:
        """The ``datasets`` name that reads a user's ``path`` (a DataError if none does)."""
        from .errors import DataError

        raise DataError(f"{type(self).__name__} reads no files ({path})")

    def load_sample_features(self, path: Path | None):
        """The feature network of :meth:`sample_metrics` from a user's file (None: not used here);
        called before sampling, so a bad file fails early. A domain whose metrics use none refuses one."""
        if path is not None:
            from .errors import ConfigError

            name = getattr(self, "registry_name", type(self).__name__)
            raise ConfigError(f"--fid-features {path}: the '{name}' modality has no sample metric that uses a"
                              " feature network (FID is for images)")
        return None

    def sample_metrics(self, samples: torch.Tensor, real: torch.Tensor, features=None) -> dict:
        """Metrics of generated model-space grids against held-out ones (e.g. FID for images)."""
        return {"status": f"no sample metrics for the '{getattr(self, 'registry_name', type(self).__name__)}' modality"}

    def grid(self, resolution: Sequence[int] | int | None = None) -> torch.Tensor:
        """(N, d) coordinates at cell centres, flattened in the grid's C order."""
        raise NotImplementedError

    def sample(self, n: int, resolution: Sequence[int] | int | None = None,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` distinct random points of the grid at ``resolution`` (default: the training grid):
        their (n, d) coordinates and their flat indices into the grid, to gather the values there
        (``values[:, index]``). This is how a step trains on part of a grid too large to decode
        whole (``train.<stage>.points``); ``n`` at least the grid's size gives every point in order."""
        coords = self.grid(resolution)
        idx = random_indices(coords.shape[0], n, generator)
        if idx is None:
            return coords, torch.arange(coords.shape[0])
        return coords[idx], idx

    def resolve_resolution(self, resolution: Sequence[int] | int | None) -> tuple[int, ...]:
        """A user's ``--resolution R`` → the grid shape it means in this domain."""
        if resolution is None:
            return tuple(self.grid_shape)
        if isinstance(resolution, int):
            return (resolution,) * len(self.grid_shape)
        return tuple(int(r) for r in resolution)

    def to_grid(self, values: torch.Tensor, resolution: Sequence[int] | int | None = None) -> torch.Tensor:
        """(B, N, c) → (B, c, *grid)."""
        shape = self.resolve_resolution(resolution)
        B, N, c = values.shape
        return values.transpose(1, 2).reshape(B, c, *shape)

    def from_grid(self, x: torch.Tensor) -> torch.Tensor:
        """(B, c, *grid) → (B, N, c)."""
        return x.flatten(2).transpose(1, 2)

    def metrics(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-item metrics between model-space grids (B, c, *grid) → name → (B,) tensor."""
        raise NotImplementedError

    def postprocess(self, pred: torch.Tensor) -> torch.Tensor:
        """Model output (logits for occupancy, values otherwise) → model-space values."""
        return pred

    def render(self, grids: torch.Tensor, out_dir: Path, stem: str = "samples", meta: dict | None = None) -> list[Path]:
        """Write model-space grids (B, c, *grid) in the modality's formats; return the paths."""
        raise NotImplementedError

    def preview_resolution(self, resolution: Sequence[int] | int | None = None) -> tuple[int, ...]:
        """The grid to decode an item at for a preview a person can judge (default: ``resolution``)."""
        return self.resolve_resolution(resolution)

    # -- a user's own files (``inrkit complete``, ``inrkit reconstruct``) ---------------------
    # Names of the keyword options the readers take (the CLI passes only those the user gave).
    observation_options: tuple[str, ...] = ()

    def read_observations(self, path: Path, **options) -> Observations:
        """A user's file of partial observations → points in this domain's coordinates, model-space values."""
        raise ConfigError(f"domain '{type(self).__name__}' has no reader of observation files")

    def read_item(self, path: Path, **options) -> torch.Tensor:
        """A user's file holding one whole item → a model-space grid (c, *grid_shape) to encode."""
        raise ConfigError(f"domain '{type(self).__name__}' has no reader of item files")

    def render_spread(self, std: torch.Tensor, out_dir: Path, stem: str = "spread", meta: dict | None = None) -> list[Path]:
        """Write per-location standard deviations (B, c, *grid), model-space units; default: as values."""
        return self.render(std, out_dir, stem=stem, meta=meta)

    def describe(self) -> dict:
        """Plain-data description stored in runs (shape, channels, scaling constants...)."""
        return {"coord_dim": self.coord_dim, "channels": self.channels, "grid_shape": list(self.grid_shape)}


def render_items(domain: Domain, grids: torch.Tensor, out_dir: Path, stem: str, meta: dict | None = None,
                 **extras) -> list[Path]:
    """``domain.render`` with the optional keywords its ``render`` accepts (``labels``, ``preview``,
    ``reference``, ``item_coords``...): a plugin domain that takes none still renders; ``None`` extras are dropped."""
    import inspect

    params = inspect.signature(domain.render).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = {k: v for k, v in extras.items() if v is not None and (takes_any or k in params)}
    return list(domain.render(grids, out_dir, stem=stem, meta=meta, **kwargs))

"""What a latent model writes to look at: prior samples, and held-out reconstructions beside their targets.

A mixin of :class:`~inrkit_ldmi.latent_model.LatentModel` (it uses the model's ``domain``,
``encode``, ``decode`` and ``sample_latents``). The domain writes the files (labelled PNG
previews, data files); these methods choose what is decoded, at which resolution, and how each
item is labelled. The trainer's ``preview`` / ``after_stage`` hooks call :meth:`Renders._render`.
"""
from __future__ import annotations

from pathlib import Path

import torch

from inrkit.domain import render_items


class Renders:
    """The renders of a latent model (``render_samples``, ``render_reconstructions``)."""

    def _render(self, context, sample_dir: Path | None, recon_dir: Path | None) -> list[Path]:
        """Samples from the prior, and held-out reconstructions next to their targets."""
        paths: list[Path] = []
        n, heldout = getattr(context.config, "n_renders", 8), context.heldout
        if sample_dir is not None:
            paths += self.render_samples(sample_dir, n, steps=getattr(context.config, "sample_steps", 50), seed=0)
        if recon_dir is not None and heldout is not None and len(heldout) > 0:
            paths += self.render_reconstructions(heldout, recon_dir, n)
        return paths

    @torch.no_grad()
    def _decode_with_preview(self, z: torch.Tensor, resolution=None, batch_size: int = 16) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Grids at ``resolution`` (the data), and the same items at the domain's preview
        resolution when that is finer (what the PNG shows: an INR renders at any size)."""
        shape = tuple(self.domain.resolve_resolution(resolution))
        view = tuple(self.domain.preview_resolution(shape))
        grids = self.decode(z, resolution=None if resolution is None else list(shape), batch_size=batch_size)
        return grids, (self.decode(z, resolution=list(view), batch_size=batch_size) if view != shape else None)

    @torch.no_grad()
    def render_samples(self, out_dir: Path, n: int, steps: int = 50, eta: float = 0.0, seed: int = 0,
                       resolution=None, stem: str = "samples", meta: dict | None = None, batch_size: int = 16,
                       compile: bool = False, **render_kwargs) -> list[Path]:
        """``n`` prior samples written by the domain (data at ``resolution``, a labelled preview)."""
        was = self.training
        self.eval()
        try:
            z = self.sample_latents(n, steps=steps, eta=eta, seed=seed, compile=compile)
            grids, view = self._decode_with_preview(z, resolution, batch_size)
        finally:
            self.train(was)
        labels = [f"sample {i} · seed {seed}" for i in range(n)]
        return [Path(p) for p in render_items(self.domain, grids, Path(out_dir), stem, meta=meta, labels=labels,
                                              preview=view, **render_kwargs)]

    @torch.no_grad()
    def render_reconstructions(self, dataset, out_dir: Path, n: int) -> list[Path]:
        """The first ``n`` items of ``dataset`` reconstructed, beside their targets: both labelled with
        the item (its date or file name where the dataset knows it), a difference panel where the
        domain draws one, and the items' own coordinates (e.g. ``time``) in data files."""
        k = min(n, len(dataset))
        x = torch.stack([dataset[i] for i in range(k)]).float()
        names = getattr(dataset, "item_labels", None)
        labels = [f"held-out {i}: {name}" for i, name in enumerate(names(range(k)))] if names else [
            f"held-out {i}" for i in range(k)]
        coords_of = getattr(dataset, "item_coords", None)
        coords = coords_of(range(k)) if coords_of else None
        transforms_of = getattr(dataset, "item_transforms", None)  # back to the source's units (meshes)
        transforms = transforms_of(range(k)) if transforms_of else None
        was = self.training
        self.eval()
        try:
            z = self.encode(x)
            rec, view = self._decode_with_preview(z)
            out_dir = Path(out_dir)
            paths = render_items(self.domain, rec, out_dir, "reconstructions", labels=labels, preview=view, reference=x,
                                 item_coords=coords, transforms=transforms)
            paths += render_items(self.domain, x, out_dir, "targets", labels=labels, item_coords=coords,
                                  transforms=transforms)
            paths += self._render_on_source_grid(dataset, z, out_dir, coords)
        finally:
            self.train(was)
        return [Path(p) for p in paths]

    def _render_on_source_grid(self, dataset, z: torch.Tensor, out_dir: Path, coords: dict | None) -> list[Path]:
        """Where the data came on a grid of its own (a user's NetCDF) and the domain can write it: the
        INRs rendered at those very coordinates, beside the targets as the files hold them."""
        grid = getattr(dataset, "source_grid", lambda: None)()
        if grid is None or not hasattr(self, "decode_at") or not hasattr(self.domain, "render_on_grid"):
            return []
        points, shape = self.domain.grid_coords(grid)
        values = self.decode_at(z, points)
        rec = values.transpose(1, 2).reshape(values.shape[0], values.shape[2], *shape)
        paths = self.domain.render_on_grid(rec, grid, out_dir, "reconstructions-source-grid", item_coords=coords)
        targets = dataset.source_targets(range(z.shape[0]))
        paths += self.domain.render_on_grid(targets, grid, out_dir, "targets-source-grid", physical=True, item_coords=coords)
        return list(paths)

"""Conditional generation from partial observations: inpainting, completion, super-resolution.

Masked grids are observations at the observed cells' centres: :func:`inrkit_ldmi.guidance.guided_latents`
conditions the latent prior on them (for the diffusion prior DDIM with reconstruction guidance,
as DPS, Chung et al. 2023: predict ẑ0 from ε̂(x_t, t), decode ẑ0 at the observed coordinates
only, and step x_t against the gradient of the residual norm ‖y − D(ẑ0)‖). Nothing here knows the modality: only
the domain's coordinates and the model's decoder are used, so images, spheres and occupancy
grids are completed alike; the result is decoded at any resolution (super-resolution).
"""
from __future__ import annotations

from typing import Sequence

import torch

from inrkit.errors import ConfigError, DataError

from .guidance import guided_latents

MASK_KINDS = ("left", "right", "top", "bottom", "north", "south", "centre", "half", "random:P", "box:y0,y1,x0,x1")


def make_mask(kind: str, shape: Sequence[int], seed: int | None = 0) -> torch.Tensor:
    """A boolean grid of ``shape`` that is True where cells are *observed*.

    2D (rows, columns; a sphere's rows run north to south): ``left``/``right``/``top``/``bottom``
    observe that half, ``north``/``south`` are ``top``/``bottom``, ``centre`` observes the centre
    box of half the side, ``box:y0,y1,x0,x1`` observes rows y0:y1 and columns x0:x1. 3D: ``half``
    observes coordinate x < 0 (the first axis). Any grid: ``random:P`` observes a random fraction
    P of the cells (exactly round(P·N), chosen by ``seed``).
    """
    shape = tuple(int(s) for s in shape)
    mask = torch.zeros(shape, dtype=torch.bool)
    if kind.startswith("random:"):
        try:
            p = float(kind.split(":", 1)[1])
        except ValueError:
            raise ConfigError(f"mask '{kind}': random:P needs a fraction P in [0, 1]") from None
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"mask '{kind}': the fraction must be in [0, 1]")
        n = mask.numel()
        g = torch.Generator().manual_seed(0 if seed is None else int(seed))
        mask.view(-1)[torch.randperm(n, generator=g)[: round(p * n)]] = True
        return mask
    if kind == "half":
        if len(shape) != 3:
            raise ConfigError(f"mask 'half' is for 3D grids, this grid is {'x'.join(map(str, shape))}")
        mask[: shape[0] // 2] = True
        return mask
    if len(shape) != 2:
        raise ConfigError(f"mask '{kind}' is for 2D grids; for {len(shape)}D use half or random:P")
    h, w = shape
    if kind == "left":
        mask[:, : w // 2] = True
    elif kind == "right":
        mask[:, w // 2 :] = True
    elif kind in ("top", "north"):
        mask[: h // 2] = True
    elif kind in ("bottom", "south"):
        mask[h // 2 :] = True
    elif kind == "centre":
        mask[h // 4 : h // 4 + max(h // 2, 1), w // 4 : w // 4 + max(w // 2, 1)] = True
    elif kind.startswith("box:"):
        try:
            y0, y1, x0, x1 = (int(v) for v in kind.split(":", 1)[1].split(","))
        except ValueError:
            raise ConfigError(f"mask '{kind}': box needs four integers y0,y1,x0,x1") from None
        if not (0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w):
            raise ConfigError(f"mask '{kind}': the box must lie inside the {h}x{w} grid and be non-empty")
        mask[y0:y1, x0:x1] = True
    else:
        raise ConfigError(f"unknown mask kind '{kind}'; known: {', '.join(MASK_KINDS)}")
    return mask


def _check(model, observed: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    c = model.domain.channels
    if observed.dim() < 3 or observed.shape[1] != c:
        raise DataError(f"observed grids must be (B, {c}, *grid), got {tuple(observed.shape)}")
    grid = tuple(observed.shape[2:])
    mask = torch.as_tensor(mask).bool()
    if tuple(mask.shape) == grid:
        mask = mask[None, None]
    if mask.dim() != observed.dim() or tuple(mask.shape[2:]) != grid or mask.shape[1] not in (1, c) \
            or mask.shape[0] not in (1, observed.shape[0]):
        raise DataError(f"mask of shape {tuple(mask.shape)} does not fit observations {tuple(observed.shape)}")
    return observed.float(), mask.expand(observed.shape[0], c, *grid)


def inpaint_latents(model, observed: torch.Tensor, mask: torch.Tensor, steps: int = 50, guidance: float = 1.0,
                    seed: int | None = None, n: int = 1, use_ema: bool = True, batch_size: int = 16,
                    clip: float | None = None, likelihood: str = "gaussian") -> torch.Tensor:
    """Guided draws of unscaled latents (B·n, *latent_shape), n per observed item (item-major).

    Grid inpainting is completion from observations at the observed cells' centres: the cells any
    item observes become the coordinates, and each item's mask weights its own residuals.
    """
    observed, mask = _check(model, observed, mask)
    grid = tuple(observed.shape[2:])
    values = model.domain.from_grid(observed)
    weights = model.domain.from_grid(mask.float())
    cells = weights.amax(dim=(0, 2)) > 0
    if not bool(cells.any()):
        raise DataError("the mask observes no cell")
    coords = model.domain.grid(grid).float()[cells]
    return guided_latents(model, coords, values[:, cells], weights[:, cells], n=n, steps=steps, guidance=guidance,
                          likelihood=likelihood, seed=seed, use_ema=use_ema, batch_size=batch_size, clip=clip)


@torch.no_grad()
def inpaint(model, observed: torch.Tensor, mask: torch.Tensor, resolution=None, steps: int = 50,
            guidance: float = 1.0, seed: int | None = None, n: int = 1, use_ema: bool = True,
            batch_size: int = 16, clip: float | None = None) -> torch.Tensor:
    """Complete partially observed model-space grids (B, c, *grid), ``mask`` True where observed
    ((B, 1 or c, *grid), or just (*grid)): n completions per item, (B·n, c, *resolution),
    decoded at ``resolution`` (default: the observations' grid). ``guidance`` 0 samples unconditionally;
    ``clip`` clamps each predicted scaled latent ẑ0 to ±clip (steadies an under-trained prior)."""
    z = inpaint_latents(model, observed, mask, steps=steps, guidance=guidance, seed=seed, n=n,
                        use_ema=use_ema, batch_size=batch_size, clip=clip)
    shape = tuple(observed.shape[2:]) if resolution is None else model.domain.resolve_resolution(resolution)
    return model.decode(z, resolution=shape, batch_size=batch_size)


def inpaint_run(run, data=None, index: int = 0, count: int = 4, mask: str = "left", n: int = 2, resolution=None,
                steps: int = 50, guidance: float = 1.0, clip: float | None = None, seed: int | None = None,
                out=None, weights: str = "final", device: str | None = None, batch_size: int = 16,
                runtime: list[str] | None = None) -> dict:
    """``inrkit inpaint RUN``: mask held-out items ``index .. index+count`` with ``mask`` (see
    :func:`make_mask`), complete each ``n`` times, render observed / completions / targets under
    ``out`` (default RUN/inpaint/) and write inpaint.json; returns what it holds (with ``files``).
    ``runtime``: ``--set`` items, the model's speed settings and, with ``data``, how that data is
    read (``data.units=degC``; :func:`inrkit.runs.split_data_sets`)."""
    import secrets
    from pathlib import Path

    from inrkit.domain import parse_resolution
    from inrkit.io import plain, write_json
    from inrkit.outputs import output_folder
    from inrkit.runs import Run, split_data_sets

    from .api import check_prior_trained

    runtime, data_fields = split_data_sets(runtime, data)
    label = str(run.path if isinstance(run, Run) else run)
    run = run if isinstance(run, Run) else Run.open(run)
    model = run.load_model(device=device, weights=weights, runtime=runtime)
    if not hasattr(model, "prior") or not hasattr(model, "decode"):
        raise ConfigError(f"{label}: model '{getattr(model, 'registry_name', type(model).__name__)}' cannot inpaint")
    check_prior_trained(run, model, weights)  # completions come from the guided prior
    val = run.dataset("val", path=data, fields=data_fields)
    if index + count > len(val):
        raise DataError(f"--index {index} --count {count}: the held-out split has {len(val)} items")
    x = torch.stack([val[i] for i in range(index, index + count)]).float()
    grid = tuple(x.shape[2:])
    observed_cells = make_mask(mask, grid, seed=0 if seed is None else seed)
    if seed is None:
        seed = secrets.randbelow(2**31)
    keep = observed_cells[None, None].expand_as(x)
    observed = torch.where(keep, x, torch.zeros_like(x))  # 0: the middle of model space

    z = inpaint_latents(model, observed, observed_cells, steps=steps, guidance=guidance, seed=seed, n=n,
                        batch_size=batch_size, clip=clip)
    at_data = model.decode(z, resolution=grid, batch_size=batch_size)
    shape = model.domain.resolve_resolution(parse_resolution(resolution)) if resolution is not None else grid
    completions = at_data if shape == grid else model.decode(z, resolution=shape, batch_size=batch_size)

    target = x.repeat_interleave(n, 0)
    cells = keep.repeat_interleave(n, 0)
    err = (at_data - target).pow(2)
    result = {
        "run": label, "weights": weights,
        "data": {"path": run.data_path(data), "split": "val", "index": index, "count": count},
        "mask": mask, "observed_fraction": float(observed_cells.float().mean()),
        "n": n, "ddim_steps": steps, "guidance": guidance, "clip": clip, "seed": seed,
        "resolution": list(shape),
        "mse_observed": float(err[cells].mean()) if bool(cells.any()) else None,
        "mse_unobserved": float(err[~cells].mean()) if bool((~cells).any()) else None,
        "metrics": {k: float(v.float().mean()) for k, v in model.domain.metrics(at_data, target).items()},
    }
    out = Path(out) if out is not None else Path(label) / "inpaint"
    meta = {"mask": mask, "seed": seed, "guidance": guidance, "ddim_steps": steps}
    size = "x".join(map(str, shape))
    with output_folder(out) as staged:  # replaces only what inrkit wrote there
        at = staged.path
        paths = [*model.domain.render(observed, at, stem=f"observed-{mask.replace(':', '_').replace(',', '_')}", meta=meta),
                 *model.domain.render(completions, at, stem=f"completions-{size}-seed{seed}", meta=meta),
                 *model.domain.render(x, at, stem="targets", meta=meta)]
        result["files"] = [str(p) for p in staged.finals(paths)]
        write_json(at / "inpaint.json", plain(result))
    return result

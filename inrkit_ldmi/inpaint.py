"""Conditional generation from partial observations: inpainting, completion, super-resolution.

The latent prior is sampled with DDIM, and at each step the latent is pulled towards
agreement with the observed cells (reconstruction guidance, as DPS, Chung et al. 2023): predict
ẑ0 from ε̂(x_t, t), decode ẑ0 at the observed coordinates only, and step x_t against the gradient
of the residual norm ‖y − D(ẑ0)‖ on the observed cells. Nothing here knows the modality: only
the domain's coordinates and the model's decoder are used, so images, spheres and occupancy
grids are completed alike; the result is decoded at any resolution (super-resolution).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

from inrkit.errors import ConfigError, DataError
from inrkit.priors.samplers import ddim_timesteps, previous_timestep, randn

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


def _values_fn(model, grid_shape: tuple[int, ...], cells: torch.Tensor):
    """z → model-space values (B, len(cells), c) at those cells of the grid, differentiably."""
    domain = model.domain
    if hasattr(model, "_inr_values"):  # LDMI: the INR is queried at the observed coordinates only
        coords = domain.grid(grid_shape).to(model.device, torch.float32)[cells]
        return lambda z: domain.postprocess(model._inr_values(z, coords).float())
    if tuple(grid_shape) != tuple(domain.grid_shape):
        raise DataError(f"observations on a {'x'.join(map(str, grid_shape))} grid: this model's decoder knows"
                        f" only its {'x'.join(map(str, domain.grid_shape))} grid")
    return lambda z: domain.postprocess(domain.from_grid(model.decoder(z).float()))[:, cells]


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
                    clip: float | None = None) -> torch.Tensor:
    """Guided DDIM draws of unscaled latents (B·n, *latent_shape), n per observed item (item-major)."""
    if clip is not None and clip <= 0:
        raise ConfigError(f"inpaint: clip must be > 0, got {clip}")
    prior = model.prior
    if not hasattr(prior, "schedule") or not hasattr(prior, "eps"):
        raise ConfigError(f"inpainting needs a diffusion prior; this run's prior is {type(prior).__name__}")
    if n < 1 or steps < 1:
        raise ConfigError(f"inpaint: n and steps must be >= 1 (got n={n}, steps={steps})")
    observed, mask = _check(model, observed, mask)
    grid = tuple(observed.shape[2:])
    # Channels-last values on the union of observed cells; per-item masks weight them.
    values = model.domain.from_grid(observed)
    weights = model.domain.from_grid(mask.float())
    cells = weights.amax(dim=(0, 2)) > 0
    if not bool(cells.any()):
        raise DataError("the mask observes no cell")
    target = values[:, cells].repeat_interleave(n, 0).to(model.device)
    weights = weights[:, cells].repeat_interleave(n, 0).to(model.device)
    values_at = _values_fn(model, grid, cells.to(model.device))

    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(int(seed))
    total = observed.shape[0] * n
    # All starting noise drawn at once: the same seed gives the same result whatever batch_size.
    x_T = randn((total, *prior.latent_shape), generator, model.device)
    scale = prior.scale_factor.float()
    ts = ddim_timesteps(prior.schedule.num_timesteps, steps, prior.config.spacing)
    was = model.training
    model.eval()
    out = []
    try:
        for i in range(0, total, batch_size):
            sl = slice(i, i + batch_size)
            out.append(_guided_ddim(prior, ts, x_T[sl], values_at, target[sl], weights[sl], scale, guidance,
                                    use_ema, clip))
    finally:
        model.train(was)
    return torch.cat(out) / scale


def _guided_ddim(prior, ts, x, values_at, target, weights, scale, guidance, use_ema, clip=None) -> torch.Tensor:
    """DDIM (η = 0) on scaled latents with a DPS correction after each step."""
    schedule = prior.schedule
    for k, t in enumerate(ts):
        a, a_prev = schedule.alpha_bar(t), schedule.alpha_bar(previous_timestep(ts, k, prior.config.spacing))
        with torch.enable_grad():
            x = x.detach().requires_grad_(guidance > 0)
            eps = prior.eps(x, torch.full((x.shape[0],), t, device=x.device, dtype=torch.long), use_ema=use_ema).float()
            x0 = (x - math.sqrt(1 - a) * eps) / math.sqrt(a)
            if clip is not None:
                x0 = x0.clamp(-clip, clip)
                eps = (x - math.sqrt(a) * x0) / math.sqrt(1 - a)
            if guidance > 0:
                # The latents the decoder knows are the unscaled ones (sample_latents divides too).
                residual = (values_at(x0 / scale) - target) * weights
                norm = residual.pow(2).flatten(1).sum(1).clamp_min(1e-12).sqrt()
                # ∇‖r‖ = ∇‖r‖²/(2‖r‖): DPS's step, normalised by the residual's size, per item.
                grad, = torch.autograd.grad(norm.sum(), x)
        x_prev = math.sqrt(a_prev) * x0.detach() + math.sqrt(max(1 - a_prev, 0.0)) * eps.detach()
        if guidance > 0:
            x_prev = x_prev - guidance * grad
        x = x_prev.detach()
    return x


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
                out=None, weights: str = "final", device: str | None = None, batch_size: int = 16) -> dict:
    """``inrkit inpaint RUN``: mask held-out items ``index .. index+count`` with ``mask`` (see
    :func:`make_mask`), complete each ``n`` times, render observed / completions / targets under
    ``out`` (default RUN/inpaint/) and write inpaint.json; returns what it holds (with ``files``)."""
    import secrets
    from pathlib import Path

    from inrkit.io import plain, write_json
    from inrkit.runs import Run

    label = str(run.path if isinstance(run, Run) else run)
    run = run if isinstance(run, Run) else Run.open(run)
    model = run.load_model(device=device, weights=weights)
    if not hasattr(model, "prior") or not hasattr(model, "decode"):
        raise ConfigError(f"{label}: model '{getattr(model, 'registry_name', type(model).__name__)}' cannot inpaint")
    val = run.dataset("val", path=data)
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
    shape = model.domain.resolve_resolution(resolution) if resolution is not None else grid
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
    paths = [*model.domain.render(observed, out, stem=f"observed-{mask.replace(':', '_').replace(',', '_')}", meta=meta),
             *model.domain.render(completions, out, stem=f"completions-{size}-seed{seed}", meta=meta),
             *model.domain.render(x, out, stem="targets", meta=meta)]
    result["files"] = [str(p) for p in paths]
    write_json(out / "inpaint.json", plain(result))
    return result

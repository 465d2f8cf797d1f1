"""``inrkit inpaint RUN``: complete held-out items from partial observations (and render finer)."""
from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any, Optional

import typer

from inrkit.errors import ConfigError, DataError

from .app import app


@app.command("inpaint")
def inpaint(
    run: Path = typer.Argument(..., help="A run directory (inrkit train ... --out RUN)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Take items from this data's val split instead of the run's."),
    index: int = typer.Option(0, "--index", min=0, help="First held-out item."),
    count: int = typer.Option(4, "--count", min=1, help="How many held-out items."),
    mask: str = typer.Option("left", "--mask", help="Observed region: left, right, top, bottom, north, south, centre,"
                             " box:y0,y1,x0,x1, half (3D), random:P."),
    n: int = typer.Option(2, "--n", min=1, help="Completions per item."),
    resolution: Optional[int] = typer.Option(
        None, "--resolution", min=1, help="Grid size to render the completions at (as inrkit sample). Default: the data's grid."),
    ddim_steps: int = typer.Option(50, "--ddim-steps", min=1, help="DDIM steps of the diffusion prior."),
    guidance: float = typer.Option(1.0, "--guidance", min=0.0, help="Reconstruction-guidance step (0 = unconditional)."),
    clip: Optional[float] = typer.Option(None, "--clip", min=0.001, help="Clamp the predicted scaled latent to ±CLIP."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (printed when not given)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default RUN/inpaint/)."),
    weights: str = typer.Option("final", "--weights", help="final, ema, or a checkpoint name."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N."),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Items sampled and decoded at once (memory)."),
) -> None:
    """Mask held-out items, complete them with the guided latent prior, render observed/completions/targets."""
    import torch

    from inrkit.io import plain, write_json
    from inrkit.runs import Run
    from inrkit_ldmi.inpaint import inpaint_latents, make_mask

    opened = Run.open(run)
    model = opened.load_model(device=device, weights=weights)
    if not hasattr(model, "prior") or not hasattr(model, "decode"):
        raise ConfigError(f"{run}: model '{getattr(model, 'registry_name', type(model).__name__)}' cannot inpaint")
    val = opened.dataset("val", path=data)
    if index + count > len(val):
        raise DataError(f"--index {index} --count {count}: the held-out split has {len(val)} items")
    x = torch.stack([val[i] for i in range(index, index + count)]).float()
    grid = tuple(x.shape[2:])
    observed_cells = make_mask(mask, grid, seed=0 if seed is None else seed)
    if seed is None:
        seed = secrets.randbelow(2**31)
    keep = observed_cells[None, None].expand_as(x)
    observed = torch.where(keep, x, torch.zeros_like(x))  # 0: the middle of model space

    z = inpaint_latents(model, observed, observed_cells, steps=ddim_steps, guidance=guidance, seed=seed, n=n,
                        batch_size=batch_size, clip=clip)
    at_data = model.decode(z, resolution=grid, batch_size=batch_size)
    shape = model.domain.resolve_resolution(resolution) if resolution is not None else grid
    completions = at_data if shape == grid else model.decode(z, resolution=shape, batch_size=batch_size)

    target = x.repeat_interleave(n, 0)
    cells = keep.repeat_interleave(n, 0)
    err = (at_data - target).pow(2)
    result: dict[str, Any] = {
        "run": str(run), "weights": weights,
        "data": {"path": opened.data_path(data), "split": "val", "index": index, "count": count},
        "mask": mask, "observed_fraction": float(observed_cells.float().mean()),
        "n": n, "ddim_steps": ddim_steps, "guidance": guidance, "clip": clip, "seed": seed,
        "resolution": list(shape),
        "mse_observed": float(err[cells].mean()) if bool(cells.any()) else None,
        "mse_unobserved": float(err[~cells].mean()) if bool((~cells).any()) else None,
        "metrics": {k: float(v.float().mean()) for k, v in model.domain.metrics(at_data, target).items()},
    }
    out = out or Path(run) / "inpaint"
    meta = {"mask": mask, "seed": seed, "guidance": guidance, "ddim_steps": ddim_steps}
    size = "x".join(map(str, shape))
    paths = [*model.domain.render(observed, out, stem=f"observed-{mask.replace(':', '_').replace(',', '_')}", meta=meta),
             *model.domain.render(completions, out, stem=f"completions-{size}-seed{seed}", meta=meta),
             *model.domain.render(x, out, stem="targets", meta=meta)]
    result["files"] = [str(p) for p in paths]
    write_json(out / "inpaint.json", plain(result))
    print(f"{count} items x {n} completions, mask {mask} ({result['observed_fraction']:.0%} observed),"
          f" seed {seed}, {ddim_steps} DDIM steps, guidance {guidance}:")
    print(f"  mse observed {_fmt(result['mse_observed'])}, unobserved {_fmt(result['mse_unobserved'])}")
    for k, v in result["metrics"].items():
        print(f"  {k} {v:.4g}")
    for p in [*paths, out / "inpaint.json"]:
        print(f"  {p}")


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4g}"

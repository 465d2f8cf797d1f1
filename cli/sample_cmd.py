"""``inrkit sample RUN``: new items from a trained run, rendered at any resolution."""
from __future__ import annotations

import secrets
from pathlib import Path
from typing import Optional

import typer

from inrkit.errors import ConfigError

from .app import app


@app.command("sample")
def sample(
    run: Path = typer.Argument(..., help="A run directory (inrkit train ... --out RUN)."),
    n: int = typer.Option(16, "--n", min=1, help="How many items."),
    resolution: Optional[int] = typer.Option(
        None, "--resolution", min=1,
        help="Grid size to render: pixels or voxels per side; sphere: latitude rows (longitudes follow). Default: the training grid."),
    ddim_steps: Optional[int] = typer.Option(None, "--ddim-steps", min=1,
                                             help="DDIM steps of the diffusion prior (default: the run's prior.steps)."),
    eta: Optional[float] = typer.Option(None, "--eta", min=0.0,
                                        help="DDIM eta, 0 = deterministic (default: the run's prior.eta)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (printed when not given)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default RUN/samples/)."),
    weights: str = typer.Option("final", "--weights", help="final, ema, or a checkpoint name such as checkpoint-prior-500."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N."),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Items decoded at once (memory)."),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the prior's denoiser for this run (worth it on a GPU for many samples)."),
) -> None:
    """Sample latents from the prior, decode them into INRs and render them."""
    from inrkit import load_run

    model = load_run(run, device=device, weights=weights)
    if not hasattr(model, "sample"):
        raise ConfigError(f"{run}: model '{model.registry_name}' cannot sample")
    if seed is None:
        seed = secrets.randbelow(2**31)
    shape = model.domain.resolve_resolution(resolution)
    prior_cfg = getattr(model.prior, "config", None)
    ddim_steps = ddim_steps or getattr(prior_cfg, "steps", 50)
    eta = getattr(prior_cfg, "eta", 0.0) if eta is None else eta
    z = model.sample_latents(n, steps=ddim_steps, eta=eta, seed=seed, compile=compile)
    grids = model.decode(z, resolution=shape, batch_size=batch_size)
    out = out or Path(run) / "samples"
    stem = f"samples-{'x'.join(map(str, shape))}-seed{seed}"
    paths = model.domain.render(grids, out, stem=stem, meta={"seed": seed, "ddim_steps": ddim_steps, "eta": eta, "weights": weights})
    print(f"{n} samples at {'x'.join(map(str, shape))} (seed {seed}, {ddim_steps} DDIM steps, eta {eta}):")
    for p in paths:
        print(f"  {p}")

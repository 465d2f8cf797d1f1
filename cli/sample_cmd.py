"""``inrkit sample RUN``: new items from a trained run, rendered at any resolution."""
from __future__ import annotations

import secrets
from pathlib import Path
from typing import Optional

import typer

from inrkit.domain import parse_resolution
from inrkit.errors import ConfigError

from .app import SEED_MAX, app, finite


@app.command("sample", epilog="Example: inrkit sample run --n 8 --resolution 92 --seed 0")
def sample(
    run: Path = typer.Argument(..., help="A run directory (inrkit train ... --out RUN)."),
    n: int = typer.Option(16, "--n", min=1, help="How many items."),
    resolution: Optional[str] = typer.Option(
        None, "--resolution",
        help="Grid to render: R (pixels or voxels per side; sphere: latitude rows, longitudes keep the training grid's aspect) or HxW such as 121x240. Default: the training grid."),
    ddim_steps: Optional[int] = typer.Option(None, "--ddim-steps", min=1,
                                             help="DDIM steps of the diffusion prior (default: the run's prior.steps)."),
    eta: Optional[float] = typer.Option(None, "--eta", min=0.0, callback=finite,
                                        help="DDIM eta, 0 = deterministic (default: the run's prior.eta)."),
    seed: Optional[int] = typer.Option(None, "--seed", min=0, max=SEED_MAX, help="Random seed (printed when not given)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default RUN/samples/)."),
    weights: str = typer.Option("final", "--weights", help="final, ema, or a checkpoint name such as checkpoint-prior-500."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N."),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Items decoded at once (memory)."),
    mesh_format: Optional[str] = typer.Option(
        None, "--format", help="Shapes: mesh files to write: ply, obj, glb, several joined with '+', or none (default: the run's)."),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the prior's denoiser for this run (worth it on a GPU for many samples)."),
    sets: Optional[list[str]] = typer.Option(
        None, "--set", help="A speed setting of the model for this sampling, e.g. --set model.inr.kernel=torch (repeatable)."),
) -> None:
    """Sample latents from the prior, decode them into INRs and render them."""
    from inrkit.outputs import check_stem, output_folder
    from inrkit.runs import Run
    from inrkit_ldmi.api import check_prior_trained

    opened = Run.open(run)
    model = opened.load_model(device=device, weights=weights, runtime=sets)
    if not hasattr(model, "sample"):
        raise ConfigError(f"{run}: model '{model.registry_name}' cannot sample")
    check_prior_trained(opened, model, weights)
    if seed is None:
        seed = secrets.randbelow(2**31)
    shape = model.domain.resolve_resolution(parse_resolution(resolution))
    extra = {}
    if mesh_format is not None:
        import inspect

        if "mesh_format" not in inspect.signature(model.domain.render).parameters:
            raise ConfigError(f"--format chooses mesh files; the '{model.domain.registry_name}' domain writes none")
        extra["mesh_format"] = mesh_format
    prior_cfg = getattr(model.prior, "config", None)
    ddim_steps = ddim_steps or getattr(prior_cfg, "steps", 50)
    eta = getattr(prior_cfg, "eta", 0.0) if eta is None else eta
    out = out or Path(run) / "samples"
    stem = f"samples-{'x'.join(map(str, shape))}-seed{seed}"
    check_stem(out, stem)  # a file of the user's under these names: refused before the sampling
    with output_folder(out) as staged:  # replaces only what inrkit wrote there
        paths = staged.finals(model.render_samples(
            staged.path, n, steps=ddim_steps, eta=eta, seed=seed, resolution=None if resolution is None else shape, stem=stem,
            meta={"seed": seed, "ddim_steps": ddim_steps, "eta": eta, "weights": weights}, batch_size=batch_size,
            compile=compile, **extra))
    print(f"{n} samples at {'x'.join(map(str, shape))} (seed {seed}, {ddim_steps} DDIM steps, eta {eta}):")
    for p in paths:
        print(f"  {p}")

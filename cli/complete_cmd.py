"""``inrkit complete RUN --observations FILE`` and ``inrkit reconstruct RUN --input FILE``: a user's own data."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from inrkit.domain import parse_resolution

from .app import SEED_MAX, app, finite

_READER_HELP = "Reader option of the run's domain (see docs/tutorials/complete.md)."


@app.command("complete", epilog="Example: inrkit complete runs/sphere-paper --observations stations.csv --n 8 --guidance 3 --clip 3")
def complete(
    run: Path = typer.Argument(..., help="A run directory (inrkit train ... --out RUN)."),
    observations: Path = typer.Option(..., "--observations", "--input",
                                      help="The observations: image (with --mask), station CSV/NetCDF/zarr, voxel grid or point list."),
    mask: Optional[Path] = typer.Option(None, "--mask", help="image: white = observed, the image's size; voxels: observed = 1."),
    units: Optional[str] = typer.Option(None, "--units", help="sphere: units of the values when the file does not say (default K)."),
    variable: Optional[str] = typer.Option(None, "--variable", help="sphere NetCDF/zarr: the variable to read."),
    sentinel: Optional[float] = typer.Option(None, "--sentinel", help="voxel grid: the value of unobserved voxels (default -1; NaN too)."),
    n: int = typer.Option(4, "--n", min=1, help="Completions to draw."),
    resolution: Optional[str] = typer.Option(None, "--resolution", help="Grid to render at: R or HxW (as inrkit sample)."),
    guidance: float = typer.Option(1.0, "--guidance", min=0.0, callback=finite, help="Guidance scale (0 = unconditional)."),
    likelihood: str = typer.Option("gaussian", "--likelihood", help="Misfit the guidance follows: gaussian (L2) or laplace (L1)."),
    ddim_steps: int = typer.Option(50, "--ddim-steps", min=1, help="DDIM steps (diffusion) or optimisation steps (gaussian)."),
    clip: Optional[float] = typer.Option(None, "--clip", min=0.001, callback=finite, help="Clamp the predicted scaled latent to ±CLIP."),
    reference: bool = typer.Option(True, "--reference/--no-reference", help="Also measure unguided samples' fit."),
    seed: Optional[int] = typer.Option(None, "--seed", min=0, max=SEED_MAX, help="Random seed (printed when not given)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default RUN/complete/)."),
    weights: str = typer.Option("final", "--weights", help="final, ema, or a checkpoint name."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N."),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Samples guided and decoded at once (memory)."),
) -> None:
    """Complete an item from partial observations at their own coordinates; write samples, mean, spread, fit."""
    from inrkit import load_run
    from inrkit_ldmi.complete import complete_file

    model = load_run(run, device=device, weights=weights)
    options = {"mask": mask, "units": units, "variable": variable, "sentinel": sentinel}
    s = complete_file(model, observations, out or Path(run) / "complete", options,
                      record={"run": str(run), "weights": weights}, n=n, resolution=parse_resolution(resolution), steps=ddim_steps,
                      guidance=guidance, likelihood=likelihood, seed=seed, clip=clip, batch_size=batch_size,
                      reference=reference)
    o, fit = s["observations"], s["fit"]
    print(f"{o['points']} observed points from {o['source']}; {n} completions at {'x'.join(map(str, s['resolution']))},"
          f" seed {s['seed']}, {s['guidance_method']}, guidance {guidance}:")
    print(f"  rmse at the observations ({fit['units']}): guided {_rmse(fit['guided'])}"
          + (f", unguided {_rmse(fit['unguided'])}" if "unguided" in fit else ""))
    print(f"  spread (std across samples): mean {s['spread']['mean']:.4g}, max {s['spread']['max']:.4g}")
    for p in s["files"]:
        print(f"  {p}")


@app.command("reconstruct", epilog="Example: inrkit reconstruct runs/image-paper --input photo.png --resolution 256")
def reconstruct(
    run: Path = typer.Argument(..., help="A run directory (inrkit train ... --out RUN)."),
    input: Path = typer.Option(..., "--input", help="One whole item: an image, a gridded NetCDF/zarr field, a voxel grid."),
    resolution: Optional[str] = typer.Option(None, "--resolution", help="Grid to render the INR at: R or HxW (as inrkit sample)."),
    units: Optional[str] = typer.Option(None, "--units", help="sphere: units of the field when the file does not say."),
    variable: Optional[str] = typer.Option(None, "--variable", help="sphere NetCDF/zarr: the variable to read."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default RUN/reconstruct/)."),
    weights: str = typer.Option("final", "--weights", help="final, ema, or a checkpoint name."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """Encode a user's (low-resolution) item and render its INR at any resolution: super-resolution."""
    from inrkit import load_run
    from inrkit_ldmi.reconstruct import reconstruct_file

    model = load_run(run, device=device, weights=weights)
    s = reconstruct_file(model, input, out or Path(run) / "reconstruct", resolution=parse_resolution(resolution),
                         record={"run": str(run), "weights": weights}, units=units, variable=variable)
    print(f"{input} encoded at {'x'.join(map(str, s['data_grid']))}, rendered at {'x'.join(map(str, s['resolution']))}:")
    for k, v in s["metrics_at_data_grid"].items():
        print(f"  {k} {v:.4g}")
    for p in s["files"]:
        print(f"  {p}")



def _rmse(fit: dict[str, Any]) -> str:
    return f"{fit['rmse']:.4g} (model space {fit['rmse_model_space']:.4g})"

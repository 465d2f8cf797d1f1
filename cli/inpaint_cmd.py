"""``inrkit inpaint RUN``: complete held-out items from partial observations (and render finer)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .app import SEED_MAX, app, finite


@app.command("inpaint", epilog="Example: inrkit inpaint run --mask left --count 4 --n 2 --seed 0")
def inpaint(
    run: Path = typer.Argument(..., help="A run directory (inrkit train ... --out RUN)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Take items from this data's val split instead of the run's."),
    index: int = typer.Option(0, "--index", min=0, help="First held-out item."),
    count: int = typer.Option(4, "--count", min=1, help="How many held-out items."),
    mask: str = typer.Option("left", "--mask", help="Observed region: left, right, top, bottom, north, south, centre,"
                             " box:y0,y1,x0,x1, half (3D), random:P."),
    n: int = typer.Option(2, "--n", min=1, help="Completions per item."),
    resolution: Optional[str] = typer.Option(
        None, "--resolution", help="Grid to render the completions at: R or HxW (as inrkit sample). Default: the data's grid."),
    ddim_steps: int = typer.Option(50, "--ddim-steps", min=1, help="DDIM steps of the diffusion prior."),
    guidance: float = typer.Option(1.0, "--guidance", min=0.0, callback=finite, help="Reconstruction-guidance step (0 = unconditional)."),
    clip: Optional[float] = typer.Option(None, "--clip", min=0.001, callback=finite, help="Clamp the predicted scaled latent to ±CLIP."),
    seed: Optional[int] = typer.Option(None, "--seed", min=0, max=SEED_MAX, help="Random seed (printed when not given)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default RUN/inpaint/)."),
    weights: str = typer.Option("final", "--weights", help="final, ema, or a checkpoint name."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N."),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Items sampled and decoded at once (memory)."),
    sets: Optional[list[str]] = typer.Option(
        None, "--set", help="A speed setting of the model, e.g. --set model.inr.kernel=torch; with --data also how"
                            " that data is read, e.g. --set data.units=degC (repeatable)."),
) -> None:
    """Mask held-out items, complete them with the guided latent prior, render observed/completions/targets."""
    from inrkit_ldmi.inpaint import inpaint_run

    result = inpaint_run(run, data=data, index=index, count=count, mask=mask, n=n, resolution=resolution,
                         steps=ddim_steps, guidance=guidance, clip=clip, seed=seed, out=out, weights=weights,
                         device=device, batch_size=batch_size, runtime=sets)
    print(f"{count} items x {n} completions, mask {mask} ({result['observed_fraction']:.0%} observed),"
          f" seed {result['seed']}, {ddim_steps} DDIM steps, guidance {guidance}:")
    print(f"  mse observed {_fmt(result['mse_observed'])}, unobserved {_fmt(result['mse_unobserved'])}")
    for k, v in result["metrics"].items():
        print(f"  {k} {v:.4g}")
    where = Path(out) if out is not None else Path(run) / "inpaint"
    for p in [*result["files"], where / "inpaint.json"]:
        print(f"  {p}")


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4g}"

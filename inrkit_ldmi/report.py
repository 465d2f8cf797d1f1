"""The report of a hyper-transformed run: its HD against the source's own conv decoder.

Both decode the *same* latents: held-out posterior means for reconstruction metrics, and the
same prior draws for samples, rendered side by side (conv decoder | HD | HD at 4× resolution, the
first two enlarged by nearest-neighbour copies so the tiles line up). ``inrkit evaluate RUN``
adds it to eval.json for every run whose config says ``paradigm: hyper-transform``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from inrkit.errors import ConfigError
from inrkit.io import load_tensors, write_json

from .config import build_part
from .stats import stat_text, summarise
from .hyper_transform import SECTION, SOURCE_DECODER_FILE, is_hyper_transform_run
from .sources import check_weights

REPORT_DIR = "hyper_transform_report"


def source_decoder(run, model) -> torch.nn.Module:
    """The conv decoder the run (an :class:`inrkit.runs.Run`) kept from its source, on the model's device, eval mode."""
    run_dir = run.path
    spec = run.config[SECTION]["source_decoder"]
    grid = tuple(model.domain.grid_shape)
    decoder = build_part("decoders", spec, out_channels=model.domain.channels, grid_shape=grid,
                         latent_shape=tuple(model.latent_shape))
    check_weights(decoder, load_tensors(run_dir / SOURCE_DECODER_FILE), f"{run_dir / SOURCE_DECODER_FILE}")
    return decoder.to(model.device).eval()


@torch.no_grad()
def _conv_decode(model, decoder, z: torch.Tensor, batch_size: int) -> torch.Tensor:
    domain, grid = model.domain, tuple(model.domain.grid_shape)
    outs = []
    for i in range(0, z.shape[0], batch_size):
        y = decoder(z[i : i + batch_size].to(model.device, torch.float32)).float()
        outs.append(domain.to_grid(domain.postprocess(domain.from_grid(y)), grid).cpu())
    return torch.cat(outs)


def side_by_side(columns: list[torch.Tensor], size: tuple[int, ...], gap: int = 1) -> torch.Tensor:
    """(B, c, *grid) batches at any sizes → one (B, c, H, k·W + gaps) batch, each resized (nearest) to ``size``."""
    tiles = []
    for k, col in enumerate(columns):
        tile = col if tuple(col.shape[2:]) == tuple(size) else F.interpolate(col.float(), size=size, mode="nearest")
        if k:
            tiles.append(torch.full((*tile.shape[:-1], gap), -1.0))  # a dark rule between columns
        tiles.append(tile)
    return torch.cat(tiles, dim=-1)


@torch.no_grad()
def hyper_transform_report(run, model=None, out: str | Path | None = None, dataset=None, n_samples: int = 8,
                           steps: int = 50, seed: int = 0, upscale: int = 4, batch_size: int = 16) -> dict[str, Any]:
    """Recon metrics of HD and conv decoder on the same held-out latents, and sample renders of both
    from the same prior draws. ``run``: a hyper-transform run (an :class:`inrkit.runs.Run` or its
    path); ``model``: its loaded model (default: its final weights); ``dataset``: default its held-out split."""
    from inrkit.runs import Run

    run = run if isinstance(run, Run) else Run.open(run)
    config = run.config
    if not is_hyper_transform_run(config):
        raise ConfigError(f"{run.path}: not a hyper-transform run (config.yaml has no 'paradigm: hyper-transform')")
    model = model if model is not None else run.load_model()
    run_dir = run.path
    out = Path(out) if out is not None else run_dir / REPORT_DIR
    decoder = source_decoder(run, model)
    domain = model.domain
    if dataset is None:
        dataset = run.dataset("val")

    was = model.training
    model.eval()
    hd_m: dict[str, list[torch.Tensor]] = {}
    conv_m: dict[str, list[torch.Tensor]] = {}
    try:
        for i in range(0, len(dataset), batch_size):
            x = torch.stack([dataset[j] for j in range(i, min(i + batch_size, len(dataset)))]).float()
            z = model.encode(x)  # posterior means: both decoders read exactly these latents
            for store, rec in ((hd_m, model.decode(z)), (conv_m, _conv_decode(model, decoder, z, batch_size))):
                for k, v in domain.metrics(rec, x).items():
                    store.setdefault(k, []).append(v.detach().float().cpu().reshape(-1))

        z = model.sample_latents(n_samples, steps=steps, seed=seed)
        hd = model.decode(z)
        conv = _conv_decode(model, decoder, z, batch_size)
        big = tuple(upscale * g for g in domain.grid_shape)
        hd_big = model.decode(z, resolution=list(big))
    finally:
        model.train(was)

    renders = []
    for grids, stem in ((conv, "conv_decoder"), (hd, "hd"), (hd_big, f"hd_{upscale}x")):
        renders += domain.render(grids, out, stem=stem)
    if len(domain.grid_shape) == 2:
        for p in domain.render(side_by_side([conv, hd, hd_big], big), out, stem="side_by_side"):
            if Path(p).suffix == ".png":
                renders.append(p)
            else:  # a triptych is a picture, not data (its NetCDF would carry made-up coordinates)
                Path(p).unlink()
    hd_s, conv_s = summarise(hd_m), summarise(conv_m)
    report = {
        "source": config[SECTION].get("source"),
        "n_items": len(dataset),
        "reconstruction": {"hd": hd_s, "conv_decoder": conv_s,
                           "hd_minus_conv": {k: hd_s[k]["mean"] - conv_s[k]["mean"] for k in hd_s if k in conv_s}},
        "samples": {"n": n_samples, "ddim_steps": steps, "seed": seed, "upscale": upscale,
                    "native_shape": list(domain.grid_shape), "upscaled_shape": list(big),
                    "renders": [str(Path(p).relative_to(run_dir)) if Path(p).is_relative_to(run_dir) else str(p)
                                for p in renders]},
    }
    write_json(out / "report.json", report)
    return report


def print_report(report: dict[str, Any], console=None) -> None:
    """The HD-vs-conv-decoder table (rich), as ``inrkit evaluate`` shows it."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    rec = report["reconstruction"]
    table = Table(title=f"hyper-transform: HD vs the source's conv decoder, same latents ({report['n_items']} held-out items)")
    for col in ("metric", "HD", "conv decoder", "HD - conv"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for name, hd in rec["hd"].items():
        conv = rec["conv_decoder"].get(name, {})
        table.add_row(name, stat_text(hd), stat_text(conv),
                      f"{rec['hd_minus_conv'].get(name, float('nan')):+.4g}")
    console.print(table)
    s = report["samples"]
    console.print(f"samples from the same {s['n']} prior draws (conv decoder | HD | HD at {s['upscale']}x,"
                  f" {'x'.join(map(str, s['upscaled_shape']))}): {', '.join(s['renders'])}", highlight=False)

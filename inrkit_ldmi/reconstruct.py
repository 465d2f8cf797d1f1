"""Super-resolution of a user's own item: read it with the domain's reader, encode, render the INR finer.

The item is read at the run's data grid (the encoder's input), encoded to its posterior mean,
and its INR is decoded at any resolution; the reconstruction's fit to the input (the domain's
metrics on the data grid) is recorded next to the renders in ``reconstruct.json``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from inrkit.errors import ConfigError
from inrkit.io import write_json
from inrkit.outputs import output_folder


def reconstruct_file(model, path: str | Path, out: str | Path, resolution=None, batch_size: int = 16,
                     record: dict[str, Any] | None = None, **options) -> dict[str, Any]:
    """Encode the item in ``path`` and render it at ``resolution``; returns what ``reconstruct.json`` holds."""
    if not hasattr(model, "encode") or not hasattr(model, "decode"):
        raise ConfigError(f"model '{type(model).__name__}' has no encoder and decoder to reconstruct with")
    domain = model.domain
    x = domain.read_item(Path(path), **options)[None].float()
    z = model.encode(x)
    at_data = model.decode(z, batch_size=batch_size)
    shape = domain.resolve_resolution(resolution)
    finer = at_data if tuple(shape) == tuple(domain.grid_shape) else model.decode(z, resolution=shape, batch_size=batch_size)
    out = Path(out)
    size = "x".join(map(str, shape))
    meta = {"input": str(path), "resolution": list(shape)}
    metrics = {k: float(v.float().mean()) for k, v in domain.metrics(at_data, x).items()}
    with output_folder(out) as staged:  # replaces only what inrkit wrote there
        paths = [*domain.render(x, staged.path, stem="input", meta=meta),
                 *domain.render(finer, staged.path, stem=f"reconstruction-{size}", meta=meta)]
        summary = {**(record or {}), "input": str(path), "data_grid": list(domain.grid_shape), "resolution": list(shape),
                   "metrics_at_data_grid": metrics, "files": [str(p) for p in staged.finals(paths)]}
        write_json(staged.path / "reconstruct.json", summary)
    summary["files"].append(str(out / "reconstruct.json"))
    return summary


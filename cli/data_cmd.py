"""``inrkit data prepare`` and ``inrkit data show``: write a dataset to a zarr cache; inspect one."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from inrkit.errors import ConfigError, InrkitError
from inrkit.outputs import refuse_inside_data

from .app import data_app

SET_HELP = "Override: domain.KEY=VALUE (e.g. domain.resolution=64) or data.KEY=VALUE (dataset fields). Repeatable."


def _open(modality: str, data: Path | None, sets: list[str] | None, split: str | None):
    """The domain (``--modality`` plus ``domain.*`` overrides) and its dataset (``data.*`` overrides)."""
    import inrkit
    from inrkit.config import apply_overrides
    from inrkit.data import open_dataset

    cfg = apply_overrides({"domain": {"name": modality}, "data": {}}, sets)
    unknown = sorted(set(cfg) - {"domain", "data"})
    if unknown:
        raise ConfigError(f"--set: unknown section '{unknown[0]}' (use domain.KEY=VALUE or data.KEY=VALUE)")
    domain_spec, data_spec = dict(cfg["domain"]), dict(cfg["data"])
    if domain_spec.pop("name") != modality:
        raise ConfigError("--set domain.name: give the modality with --modality instead")
    domain = inrkit.build("domains", modality, **domain_spec)
    path = data_spec.pop("path", None)
    if data is None and path is not None:
        data = Path(str(path))
    if split is not None:
        data_spec["split"] = split
    data_spec.setdefault("split", "all")
    dataset = open_dataset(domain, data, **data_spec)
    return domain, dataset, data


def _spec(part) -> dict[str, Any] | None:
    from inrkit.registry import spec_of

    try:
        return spec_of(part)
    except AttributeError:  # a dataset built outside the registry
        return None


def _shape(t) -> str:
    return "(" + ", ".join(str(s) for s in t) + ")"


@data_app.command("prepare", epilog="Example: inrkit data prepare --modality occupancy --data voxels --out voxels.zarr")
def prepare(
    modality: str = typer.Option(..., "--modality", "-m", help="Domain name: image, sphere, occupancy..."),
    data: Path = typer.Option(None, "--data", help="Dataset path (default: the modality's built-in dataset)."),
    out: Path = typer.Option(..., "--out", help="Zarr store to write, e.g. shapes.zarr."),
    sets: list[str] = typer.Option(None, "--set", help=SET_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
    chunk_items: int = typer.Option(1, "--chunk-items", help="Items per zarr chunk."),
    cache: Path = typer.Option(None, "--cache", help="Meshes: where voxelised meshes are cached (default: the user cache directory; never the data folder)."),
) -> None:
    """Write a dataset, at the domain's resolution, to a zarr store chunked by sample."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from inrkit_modalities.cache import check_replaceable, prepare_cache

    refuse_inside_data(out, data)
    check_replaceable(out, overwrite)
    if chunk_items < 1:
        raise ConfigError(f"--chunk-items must be >= 1, got {chunk_items}")
    if cache is not None:
        sets = [*(sets or []), f"data.cache_dir={cache}"]
    domain, dataset, data = _open(modality, data, sets, None)
    meta = {
        "domain": _spec(domain),
        "dataset": _spec(dataset),
        "source": str(data) if data is not None else "built-in",
    }
    console = Console(stderr=True)
    with Progress(TextColumn("[bold]prepare"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, disable=not console.is_terminal) as bar:  # a bar only where one is seen
        task = bar.add_task("items", total=len(dataset))
        try:
            path = prepare_cache(dataset, out, meta=meta, chunk_items=chunk_items, overwrite=overwrite,
                                 progress=lambda done, total: bar.update(task, completed=done))
        except BaseException:
            bar.update(task, visible=False)  # the error is the one line left
            raise
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    item = (domain.channels, *domain.grid_shape)
    Console().print(f"wrote {path}: {len(dataset)} items of shape {_shape(item)} float32, {size / 1e6:.2f} MB")


@data_app.command("show", epilog="Example: inrkit data show --modality sphere --data era5.nc --out era5.png")
def show(
    modality: str = typer.Option(..., "--modality", "-m", help="Domain name: image, sphere, occupancy..."),
    data: Path = typer.Option(None, "--data", help="Dataset path or prepared .zarr (default: the built-in dataset)."),
    out: Path = typer.Option(None, "--out", help="PNG of the first items (default: inrkit-show/<dataset>/show-<split>.png)."),
    n: int = typer.Option(8, "--n", help="Items drawn in the PNG."),
    split: str = typer.Option("all", "--split", help="train, val or all."),
    sets: list[str] = typer.Option(None, "--set", help=SET_HELP),
) -> None:
    """Print a dataset's size, item shape and value range; draw its first items to a PNG."""
    import torch

    if n < 1:
        raise ConfigError(f"--n must be >= 1, got {n}")
    if data is not None:  # before the data is read; the default name then comes from the data path alone
        refuse_inside_data(out or default_show_path("", data, split), data)
    domain, dataset, data = _open(modality, data, sets, split)
    count = len(dataset)
    scan = min(count, max(n, 64))
    items = torch.stack([torch.as_tensor(dataset[i]) for i in range(scan)])
    console = Console()
    name = getattr(dataset, "registry_name", type(dataset).__name__)
    over = "all items" if scan == count else f"first {scan} items"
    console.print(f"dataset   {name}: {data if data is not None else 'built-in'} (split {split})")
    console.print(f"items     {count}")
    console.print(f"shape     {_shape(items.shape[1:])} {str(items.dtype).replace('torch.', '')}")
    console.print(f"model     [{items.min().item():.4g}, {items.max().item():.4g}] ({over})")
    physical = getattr(domain, "physical", None)
    if callable(physical):
        phys = physical(items)
        what = domain.describe().get("physical", "physical units")
        console.print(f"physical  [{phys.min().item():.4g}, {phys.max().item():.4g}] ({what})")
    out = out or default_show_path(name, data, split)
    shown = min(n, count)
    names = getattr(dataset, "item_labels", None)
    labels = [f"item {i}: {name}" for i, name in enumerate(names(range(shown)))] if names else [f"item {i}" for i in range(shown)]
    _write_png(domain, items[:shown], out, getattr(dataset, "meta", None), labels)
    console.print(f"wrote     {out}")


def default_show_path(dataset: str, data: Path | None, split: str) -> Path:
    """``inrkit-show/<dataset>/show-<split>.png``: a folder named for the dataset (the data path's
    stem, or the built-in set's name), never a loose file in the working directory."""
    name = Path(data).expanduser().resolve().stem if data is not None else dataset
    return Path("inrkit-show") / (name or dataset) / f"show-{split}.png"


def _write_png(domain, grids, out: Path, meta: dict | None, labels: list[str] | None = None) -> None:
    """The domain renders into a scratch folder; its PNG is kept, other outputs (meshes...) dropped.
    ``out`` is replaced only if inrkit wrote it (:func:`inrkit.outputs.output_file`)."""
    from inrkit.domain import render_items
    from inrkit.outputs import output_file

    with output_file(out) as tmp:
        work = tmp.parent / ".render"  # hidden in the staging folder: never published
        work.mkdir()
        pngs = [p for p in render_items(domain, grids, work, "show", meta=meta, labels=labels) if Path(p).suffix.lower() == ".png"]
        if not pngs:
            raise InrkitError(f"the '{domain.registry_name}' domain renders no PNG")
        Path(pngs[0]).replace(tmp)

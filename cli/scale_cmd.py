"""``inrkit scale``: hypernetwork size against INR size, decode time and peak memory, as a table."""
from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from inrkit.config import parse_part_spec
from inrkit.errors import ConfigError

from .app import app


def _ints(text: str, option: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"{option}: expected comma-separated integers, got '{text}'") from None
    if not values or min(values) < 1:
        raise ConfigError(f"{option}: expected positive integers, got '{text}'")
    return values


def _count(n: int) -> str:
    return f"{n / 1e6:.3f}M" if n >= 1e5 else f"{n:,}"


@app.command("scale", epilog="Example: inrkit scale --hypernets hd,mlp --inr siren:depth=4,width=256 --latent 3,16,16")
def scale(
    hypernets: str = typer.Option("hd,mlp", "--hypernets", help="Comma-separated hypernetwork names."),
    inr: str = typer.Option("siren", "--inr", help="INR spec, e.g. 'siren:depth=4,width=256'."),
    latent: str = typer.Option("3,16,16", "--latent", help="Latent shape C,h,w[,t] (an MLP hypernet flattens it)."),
    in_dim: int = typer.Option(None, "--in-dim", help="INR input dimensions (overrides the INR spec)."),
    out_dim: int = typer.Option(None, "--out-dim", help="INR output channels (overrides the INR spec)."),
    hd: str = typer.Option(None, "--hd", help="Config of hd, e.g. 'dim=192,n_heads=6'."),
    mlp: str = typer.Option(None, "--mlp", help="Config of mlp, e.g. 'hidden=[256,512],latent_shape=[64]'."),
    mixture: str = typer.Option(None, "--mixture", help="Config of mixture, e.g. 'n_components=4'."),
    opts: list[str] = typer.Option(None, "--opts", help="Config of any hypernetwork, NAME:key=value,... (repeatable)."),
    resolution: str = typer.Option(None, "--resolution", help="Decode grid: R or R1,R2[,R3] (default 64 per axis in 2D, 32 in 3D)."),
    batch_size: int = typer.Option(1, "--batch-size", help="Latents decoded at once."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1 or auto."),
    repeats: int = typer.Option(3, "--repeats", help="Timed decodes (median reported)."),
    memory: bool = typer.Option(True, "--memory/--no-memory", help="Measure peak memory (CUDA only)."),
    json_out: Path = typer.Option(None, "--json", help="Also write the rows as JSON here."),
) -> None:
    """Parameters of each hypernetwork vs. the INR it emits, decode time and peak memory."""
    import torch

    from inrkit.io import write_json
    from inrkit.outputs import check_replaceable, output_file
    from inrkit.scale import scale_report

    inr_spec = parse_part_spec(inr)
    if not inr_spec.get("name"):
        raise ConfigError(f"--inr: expected NAME[:key=value,...], got '{inr}'")
    if in_dim is not None:
        inr_spec["in_dim"] = in_dim
    if out_dim is not None:
        inr_spec["out_dim"] = out_dim
    names = [n.strip() for n in hypernets.split(",")]
    if not any(names):
        raise ConfigError("--hypernets: give at least one name")
    if not all(names):
        raise ConfigError(f"--hypernets '{hypernets}': an empty name between commas")
    extra = {"hd": hd, "mlp": mlp, "mixture": mixture}
    configs: dict[str, dict] = {k: parse_part_spec(v) for k, v in extra.items() if v}
    given = {k: f"--{k}" for k in configs}
    for item in opts or []:
        spec = parse_part_spec(item)
        if not spec.get("name") or len(spec) < 2:  # 'garbage' parses as a bare name with no field
            raise ConfigError(f"--opts: expected NAME:key=value,..., got '{item}'")
        given.setdefault(spec["name"], f"--opts {item}")
        configs.setdefault(spec.pop("name"), {}).update(spec)
    for name, option in given.items():
        if name not in names:  # it would configure nothing that is measured
            raise ConfigError(f"{option}: '{name}' is not among the measured hypernetworks (--hypernets {','.join(names)})")
    if json_out is not None:
        check_replaceable(json_out)  # before the measurements: a table of the user's is refused at once
    specs = [{**configs.get(n, {}), "name": n} for n in names]
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: CUDA is not available on this machine")
    res = None
    if resolution is not None:
        r = _ints(resolution, "--resolution")
        res = r[0] if len(r) == 1 else r

    rows = scale_report(specs, inr_spec, _ints(latent, "--latent"), device=device, batch_size=batch_size,
                        resolution=res, measure_memory=memory, repeats=repeats)

    table = Table(title=f"hypernetwork vs INR size ({rows[0]['inr']['name']}, {rows[0]['n_coords']} coords, batch {batch_size}, {device})")
    for col in ("hypernet", "latent", "hypernet params", "all params", "INR params", "INR / hypernet", "decode ms", "peak MB"):
        table.add_column(col, justify="left" if col in ("hypernet", "latent") else "right")
    for row in rows:
        peak = f"{row['peak_memory_mb']:.1f}" if row["peak_memory_mb"] is not None else row["memory_note"]
        table.add_row(row["name"], "×".join(map(str, row["latent_shape"])), _count(row["hypernet_params"]),
                      _count(row["hypernet_params_total"]), _count(row["inr_params"]),
                      f"{row['inr_per_hypernet_param']:.4f}", f"{row['decode_ms']:.1f}", peak)
    Console(width=160).print(table)
    if any("reference_total" in r["parameter_report"] for r in rows):
        print("hypernet params: what the paper counts where the hypernet defines it (hd: transformer, tokenizer, "
              "base weights, weight tokens); all params: every trainable parameter.")
    if json_out is not None:
        with output_file(json_out) as tmp:
            write_json(tmp, rows)
        print(f"wrote {json_out}")

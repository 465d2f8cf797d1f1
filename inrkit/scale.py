"""Scalability report: hypernetwork size against the size of the INRs it emits, and decode cost.

The question LDMI answers ("larger INRs from a smaller hypernetwork") in one table: for each
hypernetwork, its parameters, the INR's parameters, their ratio, and the time and peak memory of
one decode (z → params → values on a grid).
"""
from __future__ import annotations

import gc
import statistics
import time
from typing import Any, Sequence

import torch

from .config import parse_part_spec
from .errors import ConfigError
from .registry import build, get_registry

CPU_MEMORY_NOTE = "unavailable on CPU"


def coordinate_grid(resolution: int | Sequence[int], dim: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(N, dim) cell centres of a regular grid over [-1, 1]^dim."""
    res = (resolution,) * dim if isinstance(resolution, int) else tuple(resolution)
    if len(res) != dim:
        raise ConfigError(f"resolution {tuple(res)} does not match the INR's {dim} input dimensions")
    axes = [(torch.arange(r, device=device, dtype=torch.float32) + 0.5) / r * 2 - 1 for r in res]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, dim)


def _as_spec(spec: str | dict[str, Any], what: str) -> dict[str, Any]:
    spec = parse_part_spec(spec) if isinstance(spec, str) else dict(spec)
    if not spec.get("name"):
        raise ConfigError(f"{what} spec needs a name, got {spec!r}")
    return spec


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def scale_report(
    hypernets: list[str | dict[str, Any]],
    inr: str | dict[str, Any],
    latent_shape: Sequence[int],
    device: str | torch.device = "cpu",
    batch_size: int = 1,
    resolution: int | Sequence[int] | None = None,
    measure_memory: bool = True,
    repeats: int = 3,
    chunk: int | None = 65536,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One row per hypernetwork spec (``"hd"``, ``{"name": "hd", "dim": 96}``; a spec may carry its
    own ``latent_shape``). ``hypernet_params`` is what the paper counts where the hypernet reports
    a ``reference_total``, else every parameter; ``hypernet_params_total`` is always every one.

    Peak memory is measured on CUDA (``max_memory_allocated`` during one decode); on CPU it is
    ``None`` with a note, since no allocator statistics exist there and an estimate would mislead.
    Decode time is the median of ``repeats`` decodes after one warm-up, in milliseconds.
    """
    device = torch.device(device)
    inr_spec = _as_spec(inr, "INR")
    if batch_size < 1 or repeats < 1:
        raise ConfigError("batch_size and repeats must be >= 1")
    rows = []
    for item in hypernets:
        spec = _as_spec(item, "hypernetwork")
        name = spec.pop("name")
        shape = tuple(int(s) for s in spec.pop("latent_shape", latent_shape))
        inr_part = get_registry("inrs").build(inr_spec["name"], **{k: v for k, v in inr_spec.items() if k != "name"})
        model = build("hypernets", name, context={"inr": inr_part, "latent_shape": shape}, **spec).to(device).eval()
        rep = model.parameter_report()
        hyper = rep.get("reference_total", rep["total"])
        res = resolution if resolution is not None else (64 if inr_part.in_dim <= 2 else 32)
        coords = coordinate_grid(res, inr_part.in_dim, device)
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(batch_size, *shape, generator=gen).to(device)

        with torch.no_grad():
            model.decode(z, coords, chunk=chunk)  # warm-up (lazy init, kernel selection)
            _sync(device)
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                model.decode(z, coords, chunk=chunk)
                _sync(device)
                times.append((time.perf_counter() - t0) * 1e3)
            peak_mb = decode_mb = None
            note = None
            if not measure_memory:
                note = "not measured"
            elif device.type == "cuda":
                gc.collect()
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
                base = torch.cuda.memory_allocated(device)
                model.decode(z, coords, chunk=chunk)
                _sync(device)
                peak = torch.cuda.max_memory_allocated(device)
                peak_mb, decode_mb = peak / 2**20, (peak - base) / 2**20
            else:
                note = CPU_MEMORY_NOTE if device.type == "cpu" else f"unavailable on {device.type}"

        rows.append({
            "name": name,
            "spec": {"name": name, **model.config.model_dump(mode="json")},
            "inr": {"name": inr_spec["name"], **inr_part.config.model_dump(mode="json")},
            "latent_shape": list(shape),
            "hypernet_params": hyper,
            "hypernet_params_total": rep["total"],
            "inr_params": inr_part.num_params,
            "inr_per_hypernet_param": inr_part.num_params / hyper,
            "parameter_report": rep,
            "device": str(device),
            "batch_size": batch_size,
            "n_coords": coords.shape[0],
            "decode_ms": statistics.median(times),
            "peak_memory_mb": peak_mb,
            "decode_memory_mb": decode_mb,
            "memory_note": note,
        })
        del model, inr_part, coords, z
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows

"""Running one job of a comparison: stage 1 of one run config under the machine's memory and disk,
with the trainer's own budget (``train.vae.max_minutes``) and end of stage; its throughput, peak
memory and parameter counts; and the decode timing of its hypernetwork."""
from __future__ import annotations

import errno
import gc
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from inrkit import __version__
from inrkit.errors import CheckpointError, ConfigError, DataError, InrkitError
from inrkit.io import write_json
from inrkit.run_folder import WEIGHTS_FILE
from inrkit.scale import scale_report
from inrkit.train import resolve_device

from ..config import build_part
from .folder import RUN_RECORD_FILE


def is_oom(err: BaseException) -> bool:
    """CUDA's OutOfMemoryError, Python's MemoryError, or an allocator's RuntimeError."""
    oom = getattr(torch.cuda, "OutOfMemoryError", None)
    if (oom is not None and isinstance(err, oom)) or isinstance(err, MemoryError):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def is_disk_full(err: BaseException) -> bool:
    return getattr(err, "errno", None) == errno.ENOSPC or "no space left on device" in str(err).lower()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepClock:
    """The trainer's ``on_step`` callback: throughput after warm-up and training peak memory.

    Each step after the warm-up moves the end mark (without a device sync); the last planned
    step syncs first. A stage its budget stopped synced at its last step already (its logs and
    checkpoint are read back), so its mark is as good.
    """

    def __init__(self, device: torch.device, steps: int, warmup: int, stage: str = "vae"):
        self.device, self.steps, self.warmup, self.stage = device, steps, warmup, stage
        self.step = 0
        self.t_warm: float | None = None
        self.end: tuple[int, float] | None = None  # (step, time) the throughput counts to
        self.peak_mb: float | None = None

    def __call__(self, stage: str, step: int, logs: dict) -> None:
        if stage != self.stage:  # the stage being measured (stage 1 for hypernetworks, 2 for priors)
            return
        self.step = step
        if step == self.warmup:
            sync(self.device)
            self.t_warm = time.perf_counter()
        elif step > self.warmup:
            if step >= self.steps:
                sync(self.device)
            self.end = (step, time.perf_counter())
            if self.device.type == "cuda":
                self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20

    def items_per_s(self, batch_size: int) -> float | None:
        if self.t_warm is None or self.end is None:
            return None
        return (self.end[0] - self.warmup) * batch_size / max(self.end[1] - self.t_warm, 1e-9)


def seeded_model(config: dict[str, Any]):
    """The run's LDMI, built under its seed: the encoder is built before the hypernetwork, so
    every hypernetwork's run of one seed starts from the same encoder weights."""
    from ..model import LDMI

    torch.manual_seed(int(config["train"]["seed"]))
    return LDMI.from_config(config)


def free_disk(path: Path) -> int:
    path = Path(path).absolute()
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


def preflight(config: dict[str, Any], run_dir: Path, device: torch.device) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Parameter counts from a weightless (meta-device) build, and what cannot fit before trying.

    Lower bounds only, in fp32: training holds weights, gradients and two AdamW moments of the
    trained parameters (more than the card: out of memory, whatever the activations); the run's
    weights file holds the weights, and its final checkpoint (unless ``train.final_checkpoint`` is
    off) the weights again and the moments (more than the free disk: the run would die writing
    them). Periodic checkpoints are not counted: a time-budgeted run may never reach one.
    """
    try:
        with torch.device("meta"):
            model = seeded_model(config)
    except Exception:  # noqa: BLE001 (a part that cannot be built weightless is simply built for real)
        return {}, None
    counts = param_counts(model)
    n_all = sum(p.numel() for p in model.parameters())
    n_train = sum(p.numel() for p in model.stage_parameters("vae"))
    del model
    gb = 2.0**30
    if device.type == "cuda":
        need, have = 4 * (n_all + 3 * n_train), torch.cuda.get_device_properties(device).total_memory
        if need > have:
            return counts, {"status": "oom", "predicted": True, "error": (
                f"not run: weights, gradients and AdamW state alone need {need / gb:.1f} GiB, the GPU has {have / gb:.1f} GiB")}
    final_checkpoint = bool(config["train"]["final_checkpoint"])  # resolved configs hold every default
    need, have = 4 * (n_all + (n_all + 2 * n_train if final_checkpoint else 0)), free_disk(run_dir)
    if need > have:
        return counts, {"status": "disk", "predicted": True, "error": (
            f"not run: its {'checkpoint and weights need' if final_checkpoint else 'weights file needs'} {need / gb:.1f} GiB,"
            f" the disk has {have / gb:.1f} GiB free")}
    return counts, None


def train_one(config: dict[str, Any], run_dir: Path, overwrite: bool = False) -> dict[str, Any]:
    """Stage 1 of one run config into ``run_dir``; returns its record (status ``ok``, ``oom`` (GPU
    memory), ``disk`` (no room for its checkpoint) or ``failed`` (the loss diverged)).

    A ``train.vae.max_minutes`` budget is the trainer's: the stage stops at the first step past it
    and ends as any stage does (checkpoint, held-out metrics, renders, weights, summary)."""
    seed = int(config["train"]["seed"])
    steps = int(config["train"]["vae"]["steps"])
    batch = int(config["train"]["vae"]["batch_size"])
    device = resolve_device(config["train"]["device"])
    record: dict[str, Any] = {"seed": seed, "run_dir": str(run_dir), "status": "ok"}
    counts, problem = preflight(config, run_dir, device)
    record.update(counts)
    if problem is not None:
        return {**record, **problem}
    model = None
    try:
        if device.type == "cuda":
            gc.collect()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        model = seeded_model(config)
        record.update(param_counts(model))
        clock = StepClock(device, steps, warmup=max(1, min(10, steps // 5)))
        summary = model.fit(out=run_dir, stages=("vae",), overwrite=overwrite, on_step=clock)
        stage = summary["stages"]["vae"]
        throughput = clock.items_per_s(batch)
        record.update({
            "steps_reached": int(stage.get("steps", clock.step)),
            "stopped_by": "budget_minutes" if stage.get("stopped_early") else "steps",
            "wall_time_s": stage.get("wall_time_s"),
            "items_per_s": throughput,
            "items_per_s_note": None if throughput is not None else f"too few steps after the {clock.warmup}-step warm-up",
            "peak_memory_mb": clock.peak_mb,
            "memory_note": None if device.type == "cuda" else f"unavailable on {device.type}",
            "heldout": stage.get("heldout"),
            "renders": stage.get("renders", []),
        })
    except (ConfigError, DataError, CheckpointError):
        raise
    except InrkitError as err:  # the trainer's "loss became nan": an outcome of this hypernetwork, not bad input
        record.update(status="disk" if is_disk_full(err) else "failed", error=str(err))
    except Exception as err:  # noqa: BLE001 (only exhausted memory or disk is an outcome; the rest is re-raised)
        if is_oom(err):
            record.update(status="oom", error=str(err).splitlines()[0][:300])
        elif is_disk_full(err):
            record.update(status="disk", error=str(err).splitlines()[0][:300])
        else:
            raise
    finally:
        del model
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return record


def record_run(config: dict[str, Any], run_dir: Path, out: Path, keep: str, **extra: Any) -> dict[str, Any]:
    """One job of a comparison, sequential or in a worker: train it, prune it as ``keep`` says and
    write its record beside the run (what ``--resume`` reuses); returns the record."""
    record = train_one(config, run_dir, overwrite=run_dir.exists())
    record["run_dir"] = str(run_dir.relative_to(out))
    record.update(extra)
    if record["status"] == "ok":
        prune(run_dir, keep)
    if run_dir.exists():  # a point predicted not to fit has no run folder
        write_json(run_dir / RUN_RECORD_FILE, record)
    return record


def param_counts(model) -> dict[str, Any]:
    report = model.hypernet.parameter_report()
    hyper = report.get("reference_total", report["total"])  # what `inrkit scale` counts too
    return {"hypernet_params": hyper, "hypernet_params_total": report["total"], "inr_params": model.inr.num_params,
            "inr_per_hypernet_param": model.inr.num_params / hyper, "encoder_params": sum(p.numel() for p in model.encoder.parameters()),
            "parameter_report": report}


def decode_timing(config: dict[str, Any], repeats: int = 5) -> dict[str, Any]:
    """``scale_report`` for this run's hypernetwork at the training grid's size and batch size."""
    model_cfg = config["model"]
    domain = build_part("domains", model_cfg["domain"])
    encoder = build_part("encoders", model_cfg["encoder"], in_channels=domain.channels, grid_shape=tuple(domain.grid_shape))
    in_dim = model_cfg["inr"]["in_dim"]
    # scale_report lays a regular grid over the INR's input space; only the number of coordinates
    # matters for time, so a 2D lat/lon grid feeding a 3D INR becomes (lat, lon, 1).
    res = tuple(domain.grid_shape) + (1,) * max(0, in_dim - len(domain.grid_shape))
    device = resolve_device(config["train"]["device"])
    try:
        row = scale_report([model_cfg["hypernet"]], model_cfg["inr"], tuple(encoder.latent_shape), device=device,
                           batch_size=int(config["train"]["vae"]["batch_size"]), resolution=res, repeats=repeats,
                           chunk=model_cfg.get("chunk"))[0]
    except Exception as err:  # noqa: BLE001
        if not is_oom(err):
            raise
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return {"status": "oom", "decode_ms": None, "decode_peak_memory_mb": None}
    return {"status": "ok", "decode_ms": row["decode_ms"], "decode_peak_memory_mb": row["peak_memory_mb"],
            "decode_batch": row["batch_size"], "decode_coords": row["n_coords"]}


def prune(run_dir: Path, keep: str) -> None:
    """``keep``: all; weights (checkpoints dropped); logs (the weights too)."""
    if keep in ("weights", "logs"):
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    if keep == "logs":
        (run_dir / WEIGHTS_FILE).unlink(missing_ok=True)


def environment(config: dict[str, Any]) -> dict[str, Any]:
    """Where a comparison ran: device, versions and the precision the trainer uses there."""
    device = resolve_device(config["train"]["device"])
    precision = config["train"].get("precision", "auto")
    if precision == "auto":  # the trainer's rule: bf16 autocast on CUDA, fp32 elsewhere
        precision = "bf16 autocast" if device.type == "cuda" else "fp32"
    env = {"device": str(device), "torch": torch.__version__, "inrkit": __version__, "precision": precision}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env
